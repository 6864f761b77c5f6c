"""Posting by mail: ``POSTNAME@HOST`` publishes (or updates) a post, ``POSTNAME-delete@HOST`` deletes it.

The conversation of one sender with this module:

* ``START``: a sender we do not know mails a post. The post waits in the
  pending Maildir and they get a confirmation request From/Reply-To
  ``POSTNAME-confirm-SECRET@HOST`` (lamson.confirm). -> ``CONFIRMING``
* ``CONFIRMING``: their answer to that address publishes the waiting post
  and tells them its URL -> ``POSTING``. Another post meanwhile gets its own
  confirmation request (the one they answer first confirms them).
* ``POSTING``: a confirmed sender; every post is published at once.
  A confirmation they left unanswered still publishes its post.
* ``DELETE`` is stateless: whatever the state, only the sender's own blog is
  looked in, so nobody can delete somebody else's post.
* ``ERROR``: a handler crashed on the sender's previous message (it was kept
  in run/undeliverable); their next message is handled as if nothing happened.

Bounces, auto-replies and list mail are ignored (answerable): an
out-of-office answer to a confirmation request must not confirm it. Mail
carrying our own loop trace never gets here (the router parks it).
"""

import logging

from app.model import names, services
from app.model.names import POST_NAME, BadName
from app.model.store import NoSuchPost
from lamson.loops import first_for
from lamson.router import route, route_like, stateless

log = logging.getLogger(__name__)

SECRET = r"[a-z0-9]+"


def publish(message, post_name, host, original=None):
    """Publish ``original`` (the pending message) or ``message`` as ``post_name``; answer with its URL."""
    source = original if original is not None else message
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
    services.confirmations("posts").send(
        services.settings.relay, post_name, message, "confirm_post.txt",
        {"post_name": post_name, "host": host, "sender": message.route_from})


def confirm(message, post_name, secret, host):
    """Publish the post waiting for ``secret``; True if it was there, else tell the sender it was not."""
    engine = services.confirmations("posts")
    _, pending_id = engine.storage.get(post_name, message.route_from)
    original = engine.verify(post_name, message.route_from, secret)
    if original is None:
        services.reply(message, "confirm_failed.txt", "That confirmation did not work",
                       f"{post_name}@{host}", post_name=post_name, host=host)
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


@route("(post_name)-confirm-(secret)@(host)", post_name=POST_NAME, secret=SECRET)
@route_like(START)
def CONFIRMING(message, post_name=None, secret=None, host=None):
    """Waiting for the answer to a confirmation request (or another post, which gets its own)."""
    if not services.answerable(message) or not good_name(message, post_name, host):
        return CONFIRMING
    if secret is None:
        ask_to_confirm(message, post_name, host)
        return CONFIRMING
    return POSTING if confirm(message, post_name, secret, host) else CONFIRMING


@route("(post_name)-confirm-(secret)@(host)", post_name=POST_NAME, secret=SECRET)
@route_like(START)
def POSTING(message, post_name=None, secret=None, host=None):
    """A confirmed sender: publish at once (or a post whose confirmation they answer late)."""
    if not services.answerable(message) or not good_name(message, post_name, host):
        return POSTING
    if secret is None:
        publish(message, post_name, host)
    else:
        confirm(message, post_name, secret, host)
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
                       post_name=post_name, host=host)
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
