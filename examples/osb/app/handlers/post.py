"""Posting by mail: ``POSTNAME@HOST`` publishes (or updates) a post, ``POSTNAME-delete@HOST`` deletes it.

Who may change a blog is decided per message, never by conversation state
(docs/security.md, "Acting on a verified sender"; issue 21, finding 1):

* a message with a verified sender (``message.sender``: the user who
  authenticated on the submission listener, or a From author whose domain
  DMARC vouches for) acts at once, in the blog of that verified address;
* any other message only *asks*: it waits in the pending Maildir and the
  address it claims (its envelope sender) gets a confirmation request
  From/Reply-To ``post-confirm-SECRET@HOST`` (lamson.confirm) saying what
  would happen. Answering it is the proof that the person reads that
  mailbox; the answer publishes or deletes, in that address's blog.

Every change goes through one of the two, each time: being confirmed once
earns nothing. That is why the handlers are ``@stateless``. Lamson keys a
conversation by the envelope sender, which anyone can write, so a state such
as "a confirmed author" would be the victim's state in a forger's hands:
``swaks --from alice@example.org`` landed in Alice's conversation and
published or deleted at once. All a forger can do now is make the claimed
address receive a confirmation request (one per message, within
lamson.confirm's limits), and replace the one it was waiting to answer.

The confirmation is for the sender's address, not for one post: that keeps
the confirm address short (a local part has at most 64 characters, a post
name alone may have 64), so what to do travels in the pending message, in
headers we set (:data:`POST_HEADER`, :data:`ACTION_HEADER`), replacing any
the sender wrote.

Bounces, auto-replies and list mail are ignored (services.answerable): an
out-of-office answer to a confirmation request must not confirm it. Mail
carrying our own loop trace never gets here: the router parks it.
"""

import logging

from app.model import names, services
from app.model.names import POST_NAME, BadName
from app.model.store import NoSuchPost
from lamson.loops import first_for
from lamson.router import route, stateless

log = logging.getLogger(__name__)

#: The confirmation target: confirm addresses are ``post-confirm-SECRET@HOST``.
TARGET = "post"
#: Where a pending message keeps the name it was mailed to (set by us, replacing any the sender wrote).
POST_HEADER = "X-OSB-Post"
#: Where a pending message keeps what it asks for: :data:`PUBLISH` or :data:`DELETE_ACTION`.
ACTION_HEADER = "X-OSB-Action"
PUBLISH = "publish"
DELETE_ACTION = "delete"


def publish(message, author, post_name, host, source=None):
    """Publish ``source`` (the pending message, else ``message``) as ``author``'s ``post_name``."""
    source = source if source is not None else message
    title = " ".join((source["subject"] or "").split()) or post_name
    blog = services.store()
    post = blog.publish(author, post_name, title[:200], services.body_of(source))
    services.request_index(host, f"published {post.blog}/{post.name}")
    services.reply(message, "published.txt", f"Published: {post.title}", f"{post_name}@{host}",
                   to=author, post=post, url=blog.url_of(post), host=host)
    log.info("published %s/%s for %s", post.blog, post.name, author)


def delete(message, author, post_name, host):
    """Delete ``author``'s post ``post_name`` (only their own blog is looked in): a reply either way."""
    blog = services.store()
    try:
        post = blog.delete(author, post_name)
    except (NoSuchPost, BadName):
        services.reply(message, "no_such_post.txt", f"No post named {post_name}", f"{post_name}-delete@{host}",
                       to=author, address=f"{post_name}@{host}", host=host)
        return
    services.request_index(host, f"deleted {post.blog}/{post.name}")
    services.reply(message, "deleted.txt", f"Deleted: {post.title}", f"{post_name}-delete@{host}",
                   to=author, post=post, host=host)
    log.info("deleted %s/%s for %s", post.blog, post.name, author)


def ask_to_confirm(message, action, post_name, host):
    """Keep the message pending and mail the claimed sender what it asks for (once per incoming message)."""
    if not first_for(message, "osb-post-confirm"):
        return
    message[POST_HEADER] = post_name
    message[ACTION_HEADER] = action
    title = " ".join((message["subject"] or "").split())[:200]
    excerpt = services.body_of(message)[:400]
    services.confirmations("posts").send(
        services.settings.relay, TARGET, message, "confirm_post.txt",
        {"post_name": post_name, "host": host, "sender": message.route_from, "action": action,
         "title": title, "excerpt": excerpt, "why": message.identity.reason})
    log.info("%s of %s asked by an unverified %s (%s): confirmation requested", action, post_name,
             message.route_from, message.identity.reason)


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
@stateless
def START(message, post_name=None, host=None):
    """Publish (or update) ``post_name``: at once for a verified sender, else after a confirmation."""
    if not services.answerable(message) or not good_name(message, post_name, host):
        return
    if message.sender:
        publish(message, message.sender, post_name, host)
    else:
        ask_to_confirm(message, PUBLISH, post_name, host)


@route("(post_name)-delete@(host)", post_name=POST_NAME)
@stateless
def DELETE(message, post_name=None, host=None):
    """Delete the sender's own post ``post_name``: at once for a verified sender, else after a confirmation."""
    if not services.answerable(message):
        return
    if message.sender:
        delete(message, message.sender, post_name, host)
    else:
        ask_to_confirm(message, DELETE_ACTION, post_name, host)


@route("post-confirm-(secret)@(host)", secret=r"[a-z0-9]+")
@stateless
def CONFIRM(message, secret=None, host=None):
    """The answer to a confirmation request: do what the pending message asked, as the address it was sent to.

    The secret went only to that address, so whoever answers with it reads
    that mailbox, whatever envelope the answer itself carries; it works once.
    """
    if not services.answerable(message):
        return
    released = services.confirmed(message, "posts", TARGET, secret, host)
    if released is None:
        return
    original, claimed = released
    post_name, action = original[POST_HEADER] or "", original[ACTION_HEADER] or ""
    try:
        names.post_name(post_name)
    except BadName:
        log.warning("the message %s confirmed has no usable post name %r", claimed, post_name)
        return
    if action == DELETE_ACTION:
        delete(message, claimed, post_name, host)
    elif action == PUBLISH:
        publish(message, claimed, post_name, host, original)
    else:
        log.warning("the message %s confirmed asks for %r: nothing done", claimed, action)
