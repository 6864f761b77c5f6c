"""Posting by mail: ``POSTNAME@HOST`` publishes (or updates) a post, ``POSTNAME-delete@HOST`` deletes it.

The conversation of one sender with this module:

* ``START``: a sender we do not know mails a post. The post waits in the
  pending Maildir and they get a confirmation request From/Reply-To
  ``post-confirm-SECRET@HOST`` (lamson.confirm). -> ``CONFIRMING``
* ``CONFIRMING``: their answer to that address publishes the waiting post
  and tells them its URL. -> ``POSTING``. Another post before they answer
  replaces the waiting one, with a new request (the old secret stops working).
* ``POSTING``: a confirmed sender; every post is published at once.
* ``DELETE`` is stateless: whatever the state, only the sender's own blog is
  looked in, so nobody can delete somebody else's post.
* ``ERROR``: a handler crashed on the sender's previous message (it was kept
  in run/undeliverable); their next message is handled as if nothing happened.

The confirmation is for the sender's address, not for one post: that keeps
the confirm address short (a local part has at most 64 characters, a post
name alone may have 64), so the post's name travels in the pending message,
in a header we set (:data:`POST_HEADER`).

Bounces, auto-replies and list mail are ignored (services.answerable): an
out-of-office answer to a confirmation request must not confirm it. Mail
carrying our own loop trace never gets here: the router parks it.
"""

import logging

from app.model import names, services
from app.model.names import POST_NAME, BadName
from app.model.store import NoSuchPost
from lamson.loops import first_for
from lamson.router import route, route_like, stateless

log = logging.getLogger(__name__)

#: The confirmation target: confirm addresses are ``post-confirm-SECRET@HOST``.
TARGET = "post"
#: Where a pending post keeps the name it was mailed to (set by us, replacing any the sender wrote).
POST_HEADER = "X-OSB-Post"


def publish(message, post_name, host, source=None):
    """Publish ``source`` (the pending message, else ``message``) as ``post_name``; answer with its URL."""
    source = source if source is not None else message
    title = " ".join((source["subject"] or "").split()) or post_name
    blog = services.store()
    post = blog.publish(message.route_from, post_name, title[:200], services.body_of(source))
    services.request_index(host, f"published {post.blog}/{post.name}")
    services.reply(message, "published.txt", f"Published: {post.title}", f"{post_name}@{host}",
                   post=post, url=blog.url_of(post), host=host)
    log.info("published %s/%s for %s", post.blog, post.name, message.route_from)


def ask_to_confirm(message, post_name, host):
    """Keep the post pending and send the confirmation request (once per incoming message)."""
    if not first_for(message, "osb-post-confirm"):
        return
    message[POST_HEADER] = post_name
    services.confirmations("posts").send(
        services.settings.relay, TARGET, message, "confirm_post.txt",
        {"post_name": post_name, "host": host, "sender": message.route_from})


def confirm(message, secret, host):
    """Publish the post waiting for ``secret``; False if none is (the secret is wrong, used or old)."""
    engine = services.confirmations("posts")
    _, pending_id = engine.storage.get(TARGET, message.route_from)
    original = engine.verify(TARGET, message.route_from, secret)
    if original is None:
        return False
    post_name = original[POST_HEADER] or ""
    try:
        names.post_name(post_name)
    except BadName:
        log.warning("pending post %s of %s has no usable name %r", pending_id, message.route_from, post_name)
        return False
    publish(message, post_name, host, original)
    if pending_id:
        engine.delete_pending(pending_id)
    return True


def good_name(message, post_name, host):
    """True if ``post_name`` can be a post (the routes match any length): else the sender is told why."""
    try:
        names.post_name(post_name)
    except BadName:
        if first_for(message, "osb-bad-name"):
            services.reply(message, "bad_name.txt", "That address cannot be a post", f"{post_name}@{host}",
                           post_name=post_name, host=host, max_name=names.MAX_NAME)
        return False
    return True


@route("(post_name)@(host)", post_name=POST_NAME)
def START(message, post_name=None, host=None):
    """A sender we do not know yet: keep the post, ask them to confirm their address."""
    if not services.answerable(message) or not good_name(message, post_name, host):
        return START
    ask_to_confirm(message, post_name, host)
    return CONFIRMING


@route("post-confirm-(secret)@(host)", secret=r"[a-z0-9]+")
@route_like(START)
def CONFIRMING(message, post_name=None, secret=None, host=None):
    """Waiting for the answer to a confirmation request (another post replaces the waiting one)."""
    if not services.answerable(message):
        return CONFIRMING
    if secret is None:
        if good_name(message, post_name, host):
            ask_to_confirm(message, post_name, host)
        return CONFIRMING
    if confirm(message, secret, host):
        return POSTING
    services.reply(message, "confirm_failed.txt", "That confirmation did not work", f"post-confirm@{host}",
                   host=host)
    return CONFIRMING


@route("post-confirm-(secret)@(host)", secret=r"[a-z0-9]+")
@route_like(START)
def POSTING(message, post_name=None, secret=None, host=None):
    """A confirmed sender: publish at once. (A second answer to their old confirmation is ignored.)"""
    if secret is not None:
        log.info("%s is confirmed already: their message to post-confirm-... is ignored", message.route_from)
    elif services.answerable(message) and good_name(message, post_name, host):
        publish(message, post_name, host)
    return POSTING


@route("(post_name)-delete@(host)", post_name=POST_NAME)
@stateless
def DELETE(message, post_name=None, host=None):
    """Delete the sender's own post ``post_name``: a reply either way."""
    if not services.answerable(message):
        return
    blog = services.store()
    try:
        post = blog.delete(message.route_from, post_name)
    except (NoSuchPost, BadName):
        services.reply(message, "no_such_post.txt", f"No post named {post_name}", f"{post_name}-delete@{host}",
                       address=f"{post_name}@{host}", host=host)
        return
    services.request_index(host, f"deleted {post.blog}/{post.name}")
    services.reply(message, "deleted.txt", f"Deleted: {post.title}", f"{post_name}-delete@{host}",
                   post=post, host=host)


@route_like(START)
def ERROR(message, post_name=None, host=None):
    """After a crash: a sender who owns a blog was confirmed, anyone else starts again."""
    if services.store().blog_of(message.route_from or ""):
        return POSTING(message, post_name=post_name, host=host)
    return START(message, post_name=post_name, host=host)
