"""Posting, confirming, updating and deleting posts by mail, in-process (no servers, no Redis)."""

import email.utils

from app.model.store import BlogStore, comment_id
from config import settings

from lamson.queue import Queue
from lamson.testing import RouterConversation, delivered, make_message
from tests.handlers.helpers import HOST, confirm_address, confirmed_author, verified_author

ALICE = "alice@example.org"
BOB = "bob@example.net"
PAGE = "posts/alice.example.org/my-first-post.html"


def test_a_first_post_waits_for_the_senders_confirmation(blog):
    client = RouterConversation(ALICE, "Hello")
    reply = client.say(f"my-first-post@{HOST}", "# Hello", expect="Confirmation required")
    assert reply["to"] == ALICE
    assert confirm_address(reply).startswith("post-confirm-")
    assert "my-first-post@osb.test" in reply.body()
    assert "Nothing proves that this message came from you" in reply.body()
    assert not (blog / PAGE).exists()


def test_confirming_publishes_the_post_and_answers_with_its_url(blog):
    _, published = confirmed_author(ALICE)
    assert "http://127.0.0.1:8848/" + PAGE in published.body()
    assert published["from"] == f"my-first-post@{HOST}" and published["subject"] == "Published: Hello"
    page = (blog / PAGE).read_text()
    assert "<h1>Hello</h1>" in page and "<em>first</em>" in page
    assert f"comment-{comment_id('alice.example.org', 'my-first-post')}@osb.test" in page
    assert "alice@example.org" not in page  # the author's address stays private
    assert Queue(settings.pending_config["posts"]).count() == 0
    assert Queue(settings.queue_config["queue"]).count() == 1  # the index rebuild was asked for


def test_a_verified_author_publishes_at_once_and_the_same_name_updates(blog):
    client, published = verified_author(ALICE)
    assert published["to"] == ALICE and not delivered("Confirmation required")
    client.say(f"second@{HOST}", "Straight *online*.", expect="second.html")
    assert "<em>online</em>" in (blog / "posts/alice.example.org/second.html").read_text()
    client.say(f"my-first-post@{HOST}", "Rewritten.", Subject="Hello again", expect="Published: Hello again")
    page = (blog / PAGE).read_text()
    assert "Rewritten." in page and "Hello again" in page and "<em>first</em>" not in page


def test_a_wrong_secret_publishes_nothing(blog):
    client = RouterConversation(ALICE, "Hello")
    client.say(f"my-first-post@{HOST}", "text", expect="Confirmation required")
    client.say(f"post-confirm-{'0' * 32}@{HOST}", "me", expect="did not work")
    assert not (blog / PAGE).exists()


def test_an_out_of_office_answer_does_not_confirm(blog, lamson_router):
    client = RouterConversation(ALICE, "Hello")
    request = client.say(f"my-first-post@{HOST}", "text", expect="Confirmation required")
    lamson_router.deliver(make_message(ALICE, confirm_address(request), "Out of office", "Away until Monday.",
                                       Auto_Submitted="auto-replied"))
    assert not (blog / PAGE).exists()
    assert not delivered("is online")


def test_auto_replies_and_bounces_never_start_a_confirmation(blog, lamson_router):
    lamson_router.deliver(make_message(ALICE, f"my-first-post@{HOST}", "Auto", "x", Precedence="bulk"))
    lamson_router.deliver(make_message("", f"my-first-post@{HOST}", "Undeliverable", "x"))
    assert not delivered("Confirmation required")


def test_another_post_while_confirming_replaces_the_waiting_one(blog):
    client = RouterConversation(ALICE, "Hello")
    first = client.say(f"one@{HOST}", "first", expect="Confirmation required")
    second = client.say(f"two@{HOST}", "second", expect="Confirmation required")
    assert confirm_address(first) != confirm_address(second)
    client.say(confirm_address(first), "me", expect="did not work")
    client.say(confirm_address(second), "me", expect="two.html")
    assert sorted(p.name for p in (blog / "posts/alice.example.org").iterdir()) == ["index.html", "two.html"]
    assert Queue(settings.pending_config["posts"]).count() == 0
    client.say(confirm_address(second), "me again", expect="did not work")  # a secret works once


def test_a_forged_post_header_does_not_choose_the_post(blog):
    client = RouterConversation(ALICE, "Hello")
    request = client.say(f"mine@{HOST}", "text", expect="Confirmation required", X_OSB_Post="elsewhere")
    client.say(confirm_address(request), "me", expect="mine.html")
    assert not (blog / "posts/alice.example.org/elsewhere.html").exists()


def test_only_the_author_deletes_a_post(blog):
    alice, _ = verified_author(ALICE)
    verified_author(BOB, post_name="bobs-post")
    bob = RouterConversation(BOB, "Delete", authenticated=True)
    bob.say(f"my-first-post-delete@{HOST}", "gone", expect="There is no post at my-first-post@osb.test")
    assert (blog / PAGE).exists()
    reply = alice.say(f"my-first-post-delete@{HOST}", "gone", expect="Deleted: Hello")
    assert reply["to"] == ALICE
    assert not (blog / PAGE).exists()
    assert "No posts any more" in (blog / "posts/alice.example.org/index.html").read_text()
    assert (blog / "posts/bob.example.net/bobs-post.html").exists()


def test_every_address_we_hand_out_fits_smtps_local_part_limit(blog):
    longest = "a" * 64
    client = RouterConversation(ALICE, "Long")
    request = client.say(f"{longest}@{HOST}", "text", expect="Confirmation required")
    published = client.say(confirm_address(request), "me", expect="is online")
    for header in (request["from"], published["from"]):
        address = email.utils.parseaddr(header)[1]
        assert address.endswith("@osb.test") and len(address.partition("@")[0]) <= 64, address


def test_a_name_too_long_is_refused_with_the_reason(blog):
    client = RouterConversation(ALICE, "Long")
    name = "a" * 65
    client.say(f"{name}@{HOST}", "text", expect="cannot be the name of a post")
    assert not delivered("Confirmation required")


def test_reserved_names_are_not_posts(blog):
    client, _ = verified_author(ALICE)
    client.say(f"x-confirm-y@{HOST}", "not a post")
    client.say(f"comment-nothing@{HOST}", "not a post")
    assert sorted(p.name for p in (blog / "posts/alice.example.org").iterdir()) == ["index.html", "my-first-post.html"]


def test_markup_in_a_post_cannot_run_in_a_readers_browser(blog):
    client, _ = verified_author(ALICE)
    client.say(f"evil@{HOST}", '<script>alert(1)</script>\n\n[x](javascript:alert(2)) <img src=x onerror=y>',
               Subject="<b>bold</b>", expect="evil.html")
    page = (blog / "posts/alice.example.org/evil.html").read_text()
    assert "<script>" not in page and "javascript:" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page


def test_an_address_full_of_path_tricks_gets_a_safe_blog(blog):
    client, published = confirmed_author("../../etc/passwd@example.org")
    assert "posts/etc.passwd.example.org/my-first-post.html" in published.body()
    assert (blog / "posts/etc.passwd.example.org/my-first-post.html").exists()
    # Nothing was written beside the blog's own folders.
    assert sorted(p.name for p in blog.parent.iterdir()) == ["data", "index", "pending-posts", "store"]
    assert [p.name for p in (blog / "posts").iterdir()] == ["etc.passwd.example.org"]


def test_after_a_crash_the_next_message_is_handled_as_usual(blog, lamson_router, monkeypatch):
    client, _ = verified_author(ALICE)
    lamson_router.LOG_EXCEPTIONS = True  # as in the workers: the crash is logged, the message parked
    real_publish = BlogStore.publish

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(BlogStore, "publish", broken)
    client.say(f"crash@{HOST}", "text")
    assert not (blog / "posts/alice.example.org/crash.html").exists()
    monkeypatch.setattr(BlogStore, "publish", real_publish)
    client.say(f"crash@{HOST}", "text again", expect="crash.html")


def test_a_confirmed_address_earns_nothing_every_unverified_change_is_confirmed(blog):
    """Issue 21, finding 1: a forger writing Alice's address lands where Alice's messages land."""
    confirmed_author(ALICE)
    forger = RouterConversation(ALICE, "Owned")  # unverified, as every forged message is
    request = forger.say(f"my-first-post@{HOST}", "Defaced.", expect="Confirmation required")
    assert request["to"] == ALICE and "Defaced." in request.body()  # Alice sees what was asked
    forger.say(f"my-first-post-delete@{HOST}", "gone", expect="Confirmation required")
    forger.say(f"new-one@{HOST}", "Under her name.", expect="Confirmation required")
    forger.say(f"post-confirm-{'0' * 32}@{HOST}", "guess", expect="did not work")
    page = (blog / PAGE).read_text()
    assert "<em>first</em>" in page and "Defaced" not in page
    assert not (blog / "posts/alice.example.org/new-one.html").exists()
    assert not delivered("Deleted:") and not delivered("Published: Owned")


def test_an_unverified_delete_happens_when_the_address_confirms(blog):
    verified_author(ALICE)
    client = RouterConversation(ALICE, "Delete")
    request = client.say(f"my-first-post-delete@{HOST}", "gone", expect="Confirmation required")
    assert 'delete your post "my-first-post"' in request.body()
    assert (blog / PAGE).exists()
    client.say(confirm_address(request), "yes", expect="Deleted: Hello")
    assert not (blog / PAGE).exists()


def test_a_verified_author_acts_on_their_own_blog_whatever_the_envelope(blog, lamson_router):
    """Acting on message.sender: a verified Bob writing Alice's envelope still only reaches Bob's blog."""
    verified_author(ALICE)
    bob = RouterConversation(BOB, "Delete", authenticated=True)
    bob.say(f"my-first-post-delete@{HOST}", "gone", expect="There is no post at my-first-post@osb.test")
    assert (blog / PAGE).exists()
