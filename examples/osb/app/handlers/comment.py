"""Comments by mail: ``comment-ID@HOST`` adds the message's text to a post's page.

Every post page (and the author's "published" reply) shows its comment
address; ID is 12 hex digits standing for ``BLOG/POSTNAME``
(app.model.store.comment_id), because the names themselves would not fit in
an address. As for posts (app/handlers/post.py), who may comment is decided
per message, never by conversation state, which a forged envelope sender
would inherit:

* a comment with a verified sender (``message.sender``) appears at once;
* any other waits in the pending Maildir, and the address it claims gets a
  confirmation request From/Reply-To ``comment-confirm-SECRET@HOST``;
  answering it (proof of reading that mailbox) publishes the comment. A new
  comment before the answer replaces the waiting one, with a new request.

Comments pass the spam filter (``@spam_filter``, under the routes; spam is
kept in ``spam_config["queue"]``, run/spam, and does nothing else). The
confirmation answer itself is not filtered: the comment it releases was.
Which post a pending comment is for travels in a header we set
(:data:`COMMENT_HEADER`), as for posts.
"""

import logging

from app.model import services
from app.model.names import BadName
from app.model.store import NoSuchPost
from lamson.loops import first_for
from lamson.router import route, stateless
from lamson.spam import spam_filter

log = logging.getLogger(__name__)

SPAM = services.settings.spam_config
#: The confirmation target: confirm addresses are ``comment-confirm-SECRET@HOST``.
TARGET = "comment"
#: Where a pending comment keeps the id of the post it is for (set by us, replacing any the sender wrote).
COMMENT_HEADER = "X-OSB-Comment-On"


#: The id in a comment address: lowercase hex, as store.comment_id makes it.
POST_ID = r"[0-9a-f]{12}"


def post_of(message, post_id, host):
    """The post being commented on, or None after telling the sender there is no such post."""
    try:
        return services.store().by_comment_id(post_id)
    except (NoSuchPost, BadName):
        if first_for(message, "osb-comment-no-post"):
            services.reply(message, "no_such_post.txt", "No such post", f"comment-{post_id}@{host}",
                           address=f"comment-{post_id}@{host}", host=host)
        return None


def add_comment(message, post, host, source=None, to=None):
    """Add the comment (the pending ``source``, else ``message``) and answer ``to`` with the post's URL."""
    source = source if source is not None else message
    blog = services.store()
    post = blog.comment(post.blog, post.name, services.display_name(source), services.body_of(source))
    services.request_index(host, f"comment on {post.blog}/{post.name}")
    services.reply(message, "commented.txt", f"Comment added: {post.title}",
                   f"comment-{post.comment_id}@{host}", to=to, post=post, url=blog.url_of(post), host=host)


def ask_to_confirm(message, post, host):
    """Keep the comment pending and send the commenter's confirmation request (once per message)."""
    if first_for(message, "osb-comment-confirm"):
        message[COMMENT_HEADER] = post.comment_id
        services.confirmations("comments").send(
            services.settings.relay, TARGET, message, "confirm_comment.txt",
            {"post": post, "host": host, "sender": message.route_from})


@route("comment-(post_id)@(host)", post_id=POST_ID)
@stateless
@spam_filter(SPAM["storage"], SPAM["config"], SPAM["queue"])
def START(message, post_id=None, host=None):
    """A comment: shown at once for a verified sender, else kept while its claimed sender confirms."""
    if not services.answerable(message):
        return
    post = post_of(message, post_id, host)
    if post is None:
        return
    if message.sender:
        add_comment(message, post, host, to=message.sender)
    else:
        ask_to_confirm(message, post, host)


@route("comment-confirm-(secret)@(host)", secret=r"[a-z0-9]+")
@stateless
def CONFIRM(message, secret=None, host=None):
    """The answer to a confirmation request: the waiting comment appears."""
    if not services.answerable(message):
        return
    released = services.confirmed(message, "comments", TARGET, secret, host)
    if released is None:
        return
    original, claimed = released
    post = post_of(message, original[COMMENT_HEADER] or "", host)  # it may have been deleted meanwhile
    if post is not None:
        add_comment(message, post, host, original, to=claimed)
