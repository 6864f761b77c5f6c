"""Comments by mail: ``comment-BLOG-POSTNAME@HOST`` adds the message's text to a post's page.

Every post page shows its comment address. A commenter's conversation with
this module (its own state, apart from their posting state in post.py):

* ``START``: the first comment of a sender waits in the pending Maildir; they
  get a confirmation request From/Reply-To
  ``comment-BLOG-POSTNAME-confirm-SECRET@HOST``. -> ``CONFIRMING``
* ``CONFIRMING``: answering it publishes the waiting comment. -> ``COMMENTING``
  (A comment to another post meanwhile gets its own request.)
* ``COMMENTING``: a confirmed commenter; comments appear at once.

Comments pass the spam filter (``@spam_filter``, under the routes; spam is
kept in ``spam_config["queue"]``, run/spam, and does nothing else). The
confirmation answer itself is not filtered: the comment it releases was.
"""

import logging

from config import settings

from app.model import services
from app.model.names import BLOG_NAME, POST_NAME
from app.model.store import NoSuchPost
from lamson.loops import first_for
from lamson.router import route, route_like
from lamson.spam import spam_filter

log = logging.getLogger(__name__)

SPAM = settings.spam_config


def target(blog, post_name):
    """The confirmation target of a comment, and the local part of its comment address."""
    return f"comment-{blog}-{post_name}"


def post_of(message, blog, post_name, host):
    """The post being commented on, or None after telling the sender there is no such post."""
    try:
        return services.store().get(blog, post_name)
    except NoSuchPost:
        if first_for(message, "osb-comment-no-post"):
            services.reply(message, "no_such_post.txt", f"No post named {post_name}",
                           f"{target(blog, post_name)}@{host}", post_name=post_name, host=host)
        return None


def add_comment(message, post, host, original=None):
    """Add the comment (the pending ``original`` or ``message``) and answer with the post's URL."""
    source = original if original is not None else message
    blog = services.store()
    post = blog.comment(post.blog, post.name, services.display_name(source), services.body_of(source))
    services.request_index(host, f"comment on {post.blog}/{post.name}")
    services.reply(message, "commented.txt", f"Comment added: {post.title}",
                   f"{target(post.blog, post.name)}@{host}", post=post, url=blog.url_of(post), host=host)


def ask_to_confirm(message, blog, post, host):
    """Keep the comment pending and send the commenter's confirmation request (once per message)."""
    if first_for(message, "osb-comment-confirm"):
        services.confirmations("comments").send(
            settings.relay, target(blog, post.name), message, "confirm_comment.txt",
            {"post": post, "host": host, "sender": message.route_from})


@route("comment-(blog)-(post_name)@(host)", blog=BLOG_NAME, post_name=POST_NAME)
@spam_filter(SPAM["storage"], SPAM["config"], SPAM["queue"])
def START(message, blog=None, post_name=None, host=None):
    """A first comment from this sender: keep it, ask them to confirm their address."""
    if not services.answerable(message):
        return None
    post = post_of(message, blog, post_name, host)
    if post is None:
        return None
    ask_to_confirm(message, blog, post, host)
    return CONFIRMING


@route("comment-(blog)-(post_name)-confirm-(secret)@(host)", blog=BLOG_NAME, post_name=POST_NAME,
       secret=r"[a-z0-9]+")
@route_like(START)
def CONFIRMING(message, blog=None, post_name=None, secret=None, host=None):
    """Waiting for the commenter's confirmation; a comment to another post meanwhile is kept too."""
    if secret is None:
        return START(message, blog=blog, post_name=post_name, host=host)  # filtered, its own request
    if not services.answerable(message):
        return None
    engine = services.confirmations("comments")
    _, pending_id = engine.storage.get(target(blog, post_name), message.route_from)
    original = engine.verify(target(blog, post_name), message.route_from, secret)
    post = post_of(message, blog, post_name, host)  # it may have been deleted meanwhile
    if original is None or post is None:
        if original is None:
            services.reply(message, "confirm_failed.txt", "That confirmation did not work",
                           f"{target(blog, post_name)}@{host}", post_name=post_name, host=host)
        return None
    add_comment(message, post, host, original)
    if pending_id:
        engine.delete_pending(pending_id)
    return COMMENTING


@route_like(START)
@spam_filter(SPAM["storage"], SPAM["config"], SPAM["queue"])
def COMMENTING(message, blog=None, post_name=None, host=None):
    """A confirmed commenter: the comment appears at once."""
    if not services.answerable(message):
        return None
    post = post_of(message, blog, post_name, host)
    if post is not None:
        add_comment(message, post, host)
    return None
