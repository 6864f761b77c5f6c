"""Comments by mail: the commenter's own confirmation, the spam filter, the post page."""

from app.model.store import comment_id
from config import settings

from lamson.queue import Queue
from lamson.spam import Filter
from lamson.testing import RouterConversation, delivered, make_message, queue
from tests.handlers.helpers import HOST, confirm_address, confirmed_author, verified_author

ALICE = "alice@example.org"
CAROL = "Carol Reader <carol@example.com>"
CAROL_ADDRESS = "carol@example.com"
COMMENT = f"comment-{comment_id('alice.example.org', 'my-first-post')}@{HOST}"
PAGE = "posts/alice.example.org/my-first-post.html"

SPAMMY = "Cheap pills casino winner viagra lottery bitcoin investment click now unsubscribe offer"
HAMMY = "Thanks for the post about mail handlers and routes, I learned something about state machines"


def test_a_first_comment_waits_for_the_commenters_confirmation_then_shows(blog):
    confirmed_author(ALICE)
    carol = RouterConversation(CAROL, "Nice")
    request = carol.say(COMMENT, "What a *nice* post.", expect="Confirmation required")
    assert confirm_address(request).startswith("comment-confirm-")
    assert "What a" not in (blog / PAGE).read_text()

    reply = carol.say(confirm_address(request), "It is me.", expect="Comment added")
    assert "http://127.0.0.1:8848/" + PAGE in reply.body()
    page = (blog / PAGE).read_text()
    assert "What a *nice* post." in page and "Carol Reader" in page
    assert "carol@example.com" not in page
    assert "Comments (1)" in page
    assert Queue(settings.pending_config["comments"]).count() == 0

    # Confirmed once earns nothing: the next unverified comment is confirmed too (a forger could send it).
    request = carol.say(COMMENT, "And a second thought.", expect="Confirmation required")
    assert "Comments (1)" in (blog / PAGE).read_text()
    carol.say(confirm_address(request), "me", expect="Comment added")
    assert "Comments (2)" in (blog / PAGE).read_text()


def test_a_verified_commenter_is_shown_at_once(blog):
    verified_author(ALICE)
    carol = RouterConversation(CAROL, "Nice", authenticated=True)
    reply = carol.say(COMMENT, "Signed and sealed.", expect="Comment added")
    assert reply["to"] == CAROL_ADDRESS and not delivered("Confirmation required")
    assert "Signed and sealed." in (blog / PAGE).read_text()


def test_the_author_confirms_again_as_a_commenter(blog):
    alice, _ = confirmed_author(ALICE)
    alice.say(COMMENT, "Replying to myself.", expect="Confirmation required")


def test_comment_text_is_shown_as_text(blog):
    confirmed_author(ALICE)
    carol = RouterConversation(CAROL, "x")
    request = carol.say(COMMENT, "<script>alert(1)</script>", expect="Confirmation required")
    carol.say(confirm_address(request), "me", expect="Comment added")
    page = (blog / PAGE).read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_comment_on_a_missing_post_is_answered_not_kept(blog):
    carol = RouterConversation(CAROL, "Hello")
    carol.say(COMMENT, "Anyone?", expect="There is no post at")
    assert not delivered("Confirmation required")


def train(spam_filter):
    for n in range(6):
        spam_filter.train_spam(make_message(f"spammer{n}@spam.example", COMMENT, "WIN BIG", SPAMMY + f" {n}"))
        spam_filter.train_ham(make_message(f"reader{n}@example.com", COMMENT, "Your post", HAMMY + f" {n}"))


def test_spam_comments_land_in_run_spam_and_nowhere_else(blog, tmp_path):
    confirmed_author(ALICE)
    train(Filter(settings.spam_config["storage"]))
    spammer = RouterConversation("spammer@spam.example", "WIN BIG")
    sent = queue().count()
    spammer.say(COMMENT, SPAMMY)
    assert queue().count() == sent  # no confirmation request, no answer at all
    spam = Queue(tmp_path / settings.spam_config["queue"])
    assert spam.count() == 1
    kept = spam.get(spam.keys()[0])
    assert kept["X-Spam-Classification"].startswith("spam")

    # Ham still passes the trained filter; spam from a verified commenter is kept aside too.
    carol = RouterConversation(CAROL, "Your post")
    request = carol.say(COMMENT, HAMMY, expect="Confirmation required")
    carol.say(confirm_address(request), "me", expect="Comment added")
    RouterConversation(CAROL, "WIN BIG", authenticated=True).say(COMMENT, SPAMMY)
    assert spam.count() == 2
    assert "Comments (1)" in (blog / PAGE).read_text()
