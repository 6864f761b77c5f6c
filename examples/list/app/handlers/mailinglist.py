"""The mailing list manager: subscribe, confirm, post, unsubscribe, bounces.

Addresses, for every list NAME in settings.mailing_lists at HOST:

    NAME@HOST                                   post to every member (members only)
    NAME-post-confirm-SECRET@HOST               a member's answer confirming a post not verified
    NAME-subscribe@HOST                         ask to join: answered with a confirmation request
    NAME-confirm-SECRET@HOST                    the answer to it: joins
    NAME-unsubscribe@HOST                       ask to leave: answered with a confirmation request
    NAME-unsubscribe-confirm-SECRET@HOST        the answer to it: leaves
    NAME-help@HOST                              how it all works
    NAME-bounce+LOCAL=DOMAIN=TAG@HOST           envelope sender of each member's copy (signed VERP,
                                                app/model/verp.py)

Every route is ``@stateless``: who is a member is kept per list in the member
store (settings.members), not in conversation state. Conversation state is per
sender and handler module, while membership is per sender *and list*, and a
bounce arrives from ``<>`` rather than from the member it is about; one record
of the truth cannot disagree with another.

Unsubscribing is confirmed too, not immediate: anyone can put any address in
a From line, so an immediate unsubscribe by mail would let a stranger take
any member off a list. The confirmation goes to the member's own address.

Who posts is decided on the verified sender (``message.sender``, lamson.identity:
the submission user who authenticated, or the From author whose domain DMARC
shows sent it), never on the envelope sender or the From line, which anyone
can write. A post whose sender is not verified, but whose one From author is a
member, is held and that member is asked to confirm it by answering (a round
trip that proves they read the mailbox); anyone else is refused.

Nothing automatic is answered or posted (RFC 3834, app/model/screening.py),
every answer to a sender is sent once per message (``first_for``), a
non-member who posts is told so at most once per ``refusal_interval``, and
every answer to an address that proved nothing (confirmation requests, help,
refusals) counts against ``unsolicited_per_hour`` for that address
(lamson.confirm's ``may_send``), whichever of our addresses was written to.
A bounce counts only when its return path carries our tag (app/model/verp.py).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from config import settings
from config.settings import confirm, members, relay

from app.model import headers, screening, verp
from lamson import view
from lamson.bounce import bounce_to
from lamson.loops import first_for
from lamson.queue import Queue
from lamson.router import route, stateless
from lamson.spam import spam_filter

log = logging.getLogger(__name__)

SECRET = "[a-f0-9]{32}"


# -- helpers ----------------------------------------------------------------


def list_headers(list_name: str, host: str) -> list[tuple[str, str]]:
    """This list's RFC 2369/2919 headers (app/model/headers.py) with its description from the settings."""
    return headers.list_headers(list_name, host, settings.mailing_lists.get(list_name, ""),
                                getattr(settings, "list_archive_url", None))


def answerable(message: Any, list_name: str, host: str) -> bool:
    """True when the sender may get an automatic answer: not automatic mail, and the first time for it."""
    why = screening.refusal(message, list_name, host)
    if why:
        log.info("no answer to <%s> for %s: %s", message.From, message.To, why)
        return False
    if not message.route_from:
        return False
    # One message to several of our addresses is routed once per address: one answer per address.
    return first_for(message, scope=str(message.To))


def answer(message: Any, template: str, list_name: str, host: str, subject: str,
           sender_address: str | None = None, *, to: str | None = None, unsolicited: bool = True,
           **variables: Any) -> bool:
    """Mail ``to`` (default the envelope sender of ``message``) a rendered template, from
    ``sender_address`` (default NAME-help); False when nothing was sent.

    ``unsolicited`` (the default: help, refusals, confirmation requests) counts the message against
    the recipient's ``unsolicited_per_hour`` and sends nothing past it; a caller that counted
    already (before keeping a confirmation pending) or answers a proven address passes False.
    """
    recipient = to or message.route_from
    if unsolicited and not confirm.may_send(recipient):
        log.info("no %s to <%s> for %s: unsolicited_per_hour reached", template, recipient, list_name)
        return False
    service = sender_address or f"{list_name}-help@{host}"
    values = {
        "list_name": list_name, "host": host, "sender": recipient, "service": service,
        "description": settings.mailing_lists.get(list_name, ""), "post_address": f"{list_name}@{host}",
        "subject": subject, **variables,
    }
    # Header values name variables; what a sender wrote never becomes part of a template.
    response = view.respond(values, Body=template, From="{{ service }}", To="{{ sender }}", Subject="{{ subject }}")
    if sender_address:
        response["Reply-To"] = sender_address
    for name, value in list_headers(list_name, host):
        response[name] = value
    if message["message-id"]:
        response["In-Reply-To"] = message["message-id"]
    relay.deliver(response, To=recipient)
    return True


def verp_key() -> bytes:
    """The secret VERP tags are made with (config/boot.py loads it from run/verp.key)."""
    key: bytes = settings.verp_key
    return key


def archive(list_name: str, data: bytes) -> str:
    """Keep a post in the list's Maildir archive (run/archive/LIST); its key."""
    return Queue(Path(settings.archive_dir) / list_name).push(data)


def fan_out(list_name: str, host: str, data: bytes) -> int:
    """Queue one copy per active member, each with that member's VERP envelope sender; how many.

    The copy is built once; the relay worker delivers the outbox files (one
    per member) in batches over a kept-open session.
    """
    count = 0
    key = verp_key()
    for member in members.members(list_name):
        relay.deliver(data, To=member, From=verp.return_path(list_name, member, host, key))
        count += 1
    return count


def publish(message: Any, list_name: str, host: str) -> int:
    """Archive a post a member sent (verified, or confirmed) and queue it for every member; how many copies."""
    data = headers.list_copy(message.Data, list_headers(list_name, host))
    key = archive(list_name, data)
    count = fan_out(list_name, host, data)
    log.info("post from <%s> to %s archived as %s, queued for %d member(s)", message.From, list_name, key, count)
    return count


# -- subscribing --------------------------------------------------------------


@route("(list_name)-subscribe@(host)")
@stateless
def SUBSCRIBE(message, list_name=None, host=None):
    """Ask the sender to confirm; a member is told they already are one."""
    if not answerable(message, list_name, host):
        return
    if members.is_member(list_name, message.route_from):
        answer(message, "already_member.txt", list_name, host, f"You are already on {list_name}@{host}")
        return
    if not confirm.may_send(message.route_from):  # counted before anything is kept pending
        return
    local = confirm.register(list_name, message)
    address = f"{local}@{host}"
    answer(message, "confirm_subscribe.txt", list_name, host, f"Confirm your subscription to {list_name}@{host}",
           sender_address=address, confirm_address=address, unsolicited=False)


@route("(list_name)-confirm-(secret)@(host)", secret=SECRET)
@stateless
def CONFIRM_SUBSCRIBE(message, list_name=None, secret=None, host=None):
    """The answer to a subscription request: a matching secret from the same address joins the list.

    An auto-responder answering the request (to its Reply-To) must not
    subscribe anyone, hence the RFC 3834 check before the secret is used.
    """
    why = screening.refusal(message, list_name, host)
    if why or not message.route_from:
        log.info("confirmation for %s from <%s> ignored: %s", list_name, message.From, why or "null sender")
        return
    _, pending = confirm.storage.get(list_name, message.route_from)
    if confirm.verify(list_name, message.route_from, secret) is None:
        log.info("confirmation for %s from <%s>: unknown or used secret", list_name, message.route_from)
        return
    if pending:
        confirm.delete_pending(pending)
    members.add(list_name, message.route_from)
    log.info("%s subscribed to %s", message.route_from, list_name)
    answer(message, "welcome.txt", list_name, host, f"Welcome to {list_name}@{host}", unsolicited=False)


# -- unsubscribing ------------------------------------------------------------


@route("(list_name)-unsubscribe@(host)")
@stateless
def UNSUBSCRIBE(message, list_name=None, host=None):
    """Ask a member (or a disabled one) to confirm leaving; anyone else is told they are not on it."""
    if not answerable(message, list_name, host):
        return
    sender = message.route_from
    if not (members.is_member(list_name, sender) or members.is_disabled(list_name, sender)):
        answer(message, "not_member.txt", list_name, host, f"You are not on {list_name}@{host}")
        return
    if not confirm.may_send(sender):
        return
    local = confirm.register(f"{list_name}-unsubscribe", message)
    address = f"{local}@{host}"
    answer(message, "confirm_unsubscribe.txt", list_name, host, f"Confirm leaving {list_name}@{host}",
           sender_address=address, confirm_address=address, unsolicited=False)


@route("(list_name)-unsubscribe-confirm-(secret)@(host)", secret=SECRET)
@stateless
def CONFIRM_UNSUBSCRIBE(message, list_name=None, secret=None, host=None):
    """The answer to an unsubscription request: leaves the list."""
    why = screening.refusal(message, list_name, host)
    if why or not message.route_from:
        log.info("unsubscription for %s from <%s> ignored: %s", list_name, message.From, why or "null sender")
        return
    target = f"{list_name}-unsubscribe"
    _, pending = confirm.storage.get(target, message.route_from)
    if confirm.verify(target, message.route_from, secret) is None:
        log.info("unsubscription for %s from <%s>: unknown or used secret", list_name, message.route_from)
        return
    if pending:
        confirm.delete_pending(pending)
    members.remove(list_name, message.route_from)
    log.info("%s unsubscribed from %s", message.route_from, list_name)
    answer(message, "goodbye.txt", list_name, host, f"You have left {list_name}@{host}", unsolicited=False)


@route("(list_name)-help@(host)")
@stateless
def HELP(message, list_name=None, host=None):
    """How to use the list (the List-Help address)."""
    if answerable(message, list_name, host):
        answer(message, "help.txt", list_name, host, f"How {list_name}@{host} works")


# -- bounces ------------------------------------------------------------------

_BOUNCE_ADDRESS = re.compile(r"^(?P<list_name>[^@]+?)-bounce\+(?P<verp>[^@]+)@(?P<host>[^@]+)$")


def bounced_member(message: Any) -> tuple[str, str, str] | None:
    """``(list, member, host)`` named by the signed VERP address a bounce came to, or None.

    A return path without our tag, or with a tag that does not verify for this list and member,
    names nobody: anyone can send a bounce to any address, and only the return paths we made
    carry a tag (app/model/verp.py). Untagged return paths of copies sent before tags are
    ignored the same way: their bounces count for nobody.
    """
    found = _BOUNCE_ADDRESS.match(str(message.To).lower())
    if not found or found["list_name"] not in settings.mailing_lists:
        return None
    try:
        member = verp.verified_member(found["verp"], found["list_name"], verp_key())
    except verp.BadTag as why:
        log.warning("bounce to %s from <%s> ignored: %s", message.To, message.From, why)
        return None
    except ValueError:
        return None
    return found["list_name"], member, found["host"]


def SOFT_BOUNCE(message):
    """A transient failure (mailbox full, server busy): counted, nothing else."""
    named = bounced_member(message)
    if named is None or not members.is_member(named[0], named[1]):
        log.info("soft bounce to %s for no member: ignored", message.To)
        return None
    count = members.bounced(named[0], named[1], "soft")
    log.info("soft bounce %d for %s on %s: %s", count, named[1], named[0], message.bounce.error_for_humans())
    return None


def HARD_BOUNCE(message):
    """A permanent failure: counted; at ``bounce_disable_after`` the member is disabled and told how to return."""
    named = bounced_member(message)
    if named is None or not members.is_member(named[0], named[1]):
        log.info("hard bounce to %s for no member: ignored", message.To)
        return None
    list_name, member, host = named
    count = members.bounced(list_name, member, "hard")
    log.info("hard bounce %d for %s on %s: %s", count, member, list_name, message.bounce.error_for_humans())
    if count >= int(settings.bounce_disable_after) and members.disable(list_name, member):
        log.warning("%s disabled on %s after %d hard bounces", member, list_name, count)
        notice = view.respond(
            {"list_name": list_name, "host": host, "member": member, "count": count},
            Body="disabled.txt", From="{{ list_name }}-help@{{ host }}", To="{{ member }}",
            Subject="Your subscription to {{ list_name }}@{{ host }} is disabled",
        )
        for name, value in list_headers(list_name, host):
            notice[name] = value
        # From <>: a notice to an address that bounces must not bounce back and be counted again.
        relay.deliver(notice, To=member, From="")
    return None


@route(r"(list_name)-bounce\+(address)@(host)", address=r"[a-z0-9._=+-]+")
@stateless
@bounce_to(soft=SOFT_BOUNCE, hard=HARD_BOUNCE)
def BOUNCE(message, list_name=None, address=None, host=None):
    """Mail to a return path that is no bounce (an auto-reply sent there): nothing to do."""
    log.info("mail to %s from <%s> is not a bounce: ignored", message.To, message.From)


# -- posting ------------------------------------------------------------------


@route("(list_name)@(host)")
@stateless
@spam_filter(settings.spam_db, None, settings.spam_dir)
def POST(message, list_name=None, host=None):
    """A post: checked, archived, and queued once per member.

    Spam never gets here (``@spam_filter`` pushes it into run/spam). Automatic
    mail and the list's own mail coming back are dropped without an answer;
    a non-member is told once; a member's post goes to every active member,
    the poster included (so they see it arrived).
    """
    why = screening.refusal(message, list_name, host)
    if why:
        log.info("not posted to %s from <%s>: %s", list_name, message.From, why)
        return
    identity = message.identity
    if identity.address is not None and members.is_member(list_name, identity.address):
        publish(message, list_name, host)
    elif identity.address is None and identity.claimed and members.is_member(list_name, identity.claimed):
        log.info("post to %s from <%s> claiming member %s: not verified (%s), asking the member", list_name,
                 message.From, identity.claimed, identity.reason)
        ask_to_confirm_post(message, list_name, host, identity.claimed)
    else:
        log.info("post to %s from <%s>: no member (%s)", list_name, message.From, identity.reason)
        refuse_non_member(message, list_name, host)


def ask_to_confirm_post(message: Any, list_name: str, host: str, member: str) -> None:
    """Hold a post that claims to come from ``member`` and ask that member (not the sender) to confirm it.

    The request goes to the member's own address, so a forger never sees the secret; a member
    who did not write the post ignores it and nothing is posted. One post waits per member: a
    newer one replaces it (the request quotes the subject, so the member knows which one).
    """
    if not first_for(message, scope=str(message.To)):
        return
    if not confirm.may_send(member):
        return
    local = confirm.register(f"{list_name}-post", message, sender=member)
    address = f"{local}@{host}"
    answer(message, "confirm_post.txt", list_name, host, f"Confirm your post to {list_name}@{host}",
           sender_address=address, to=member, unsolicited=False, confirm_address=address,
           original_subject=message["subject"] or "(no subject)")


@route("(list_name)-post-confirm-(secret)@(host)", secret=SECRET)
@stateless
def CONFIRM_POST(message, list_name=None, secret=None, host=None):
    """A member's answer to a post confirmation request: the held post goes to every member.

    The secret went only to the member's address, so an answer that carries it comes from
    someone who reads that mailbox. It is looked up under the answer's envelope sender or its
    From author (providers often write one differently from the other); it works once.
    """
    why = screening.refusal(message, list_name, host)
    if why or not message.route_from:
        log.info("post confirmation for %s from <%s> ignored: %s", list_name, message.From, why or "null sender")
        return
    target = f"{list_name}-post"
    candidates = [message.route_from, message.identity.claimed]
    for member in dict.fromkeys(c for c in candidates if c):
        _, pending = confirm.storage.get(target, member)
        original = confirm.verify(target, member, secret)
        if original is not None:
            break
    else:
        log.info("post confirmation for %s from <%s>: unknown or used secret", list_name, message.route_from)
        return
    if pending:
        confirm.delete_pending(pending)
    if not members.is_member(list_name, member):
        log.info("post confirmed by <%s>, no longer a member of %s: dropped", member, list_name)
        return
    log.info("post to %s confirmed by member %s", list_name, member)
    publish(original, list_name, host)


def refuse_non_member(message: Any, list_name: str, host: str) -> None:
    """Tell a non-member that only members post, once per refusal_interval (and once per message)."""
    sender = message.route_from
    if not sender:
        return
    interval = int(getattr(settings, "refusal_interval", 24 * 3600))
    if not first_for(message, scope=str(message.To)):
        return
    if not members.first_refusal(list_name, sender, interval):
        log.info("post from non-member <%s> to %s dropped: already told", sender, list_name)
        return
    log.info("post from non-member <%s> to %s refused", sender, list_name)
    answer(message, "members_only.txt", list_name, host, f"Only members post to {list_name}@{host}",
           original_subject=message["subject"] or "(no subject)")
