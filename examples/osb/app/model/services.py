"""What the handlers share, read from config.settings when used (so tests can point it elsewhere).

config/boot.py (and config/testing.py) put the services on config.settings:
``relay`` and ``confirm_storage``; the folders come from ``blog_config``,
``pending_config`` and ``queue_config``.
"""

from __future__ import annotations

import email.utils
import logging
from typing import Any

from config import settings as _settings

from app.model.store import BlogStore
from lamson import view
from lamson.bounce import auto_reply_refusal
from lamson.confirm import ConfirmationEngine
from lamson.mail import MailResponse
from lamson.queue import Queue

log = logging.getLogger(__name__)

#: config.settings: plain values, and the services config/boot.py assigns at run time (hence Any).
settings: Any = _settings

#: The address the queue worker's index handler answers (app/handlers/index.py).
INDEX_ADDRESS = "index-rebuild"


def store() -> BlogStore:
    """The blog store of ``blog_config``: public pages in ``site``, records in ``store``."""
    config = settings.blog_config
    return BlogStore(config["site"], config["store"], config["url"], config["host"])


def confirmations(kind: str) -> ConfirmationEngine:
    """The confirmation engine of ``kind`` ("posts" or "comments"): its own pending Maildir, shared storage."""
    return ConfirmationEngine(settings.pending_config[kind], settings.confirm_storage)


def confirmed(message: Any, kind: str, target: str, secret: str, host: str) -> tuple[Any, str] | None:
    """The pending message an answer to a ``kind`` confirmation request releases, and the address it was
    asked of; None (and, once, a reply saying so) when the secret does not verify.

    The secret went only to that address, so whoever answers with it reads that mailbox, whatever envelope
    the answer itself carries; it works once.
    """
    from lamson.loops import first_for

    engine = confirmations(kind)
    claimed = message.route_from or ""
    _, pending_id = engine.storage.get(target, claimed)
    original = engine.verify(target, claimed, secret) if claimed else None
    if original is None:
        if first_for(message, f"osb-{target}-confirm-failed"):
            reply(message, "confirm_failed.txt", "That confirmation did not work", f"{target}-confirm@{host}",
                  host=host)
        return None
    if pending_id:
        engine.delete_pending(pending_id)
    return original, claimed


def request_index(host: str, why: str) -> str:
    """Ask the queue worker to rebuild the front page: a message into the ``queue_config`` Maildir.

    Rebuilding reads every blog, so it is not done while the sender's
    conversation waits; pushed from a router worker, the QueueReceiver is
    woken at once.
    """
    note = MailResponse(To=f"{INDEX_ADDRESS}@{host}", From=f"noreply@{host}", Subject="Rebuild the index",
                        Body=why + "\n")
    return Queue(settings.queue_config["queue"]).push(note)


def answerable(message: Any) -> bool:
    """False for bounces, auto-replies and list mail (RFC 3834): they must not post, confirm or get answers.

    An out-of-office reply to a confirmation request would otherwise confirm
    it, and two robots answering each other would never stop.
    """
    refusal = auto_reply_refusal(message)
    if refusal:
        log.info("ignoring mail from %s to %s: %s", message.From, message.To, refusal)
    return refusal is None


def display_name(message: Any) -> str:
    """How a commenter is shown: the name in From, else the address's local part (never the address)."""
    realname, address = email.utils.parseaddr(message["from"] or "")
    realname = " ".join(realname.split())[:80]
    return realname or (address or message.From or "someone").partition("@")[0][:80] or "someone"


def body_of(message: Any) -> str:
    """The text a sender wrote: the plain text body without the signature (after a ``-- `` line)."""
    lines = (message.body() or "").splitlines()
    if "-- " in lines:
        lines = lines[:lines.index("-- ")]
    return "\n".join(lines).strip() + "\n"


def reply(message: Any, template: str, subject: str, sender_address: str, to: str | None = None,
          **variables: Any) -> None:
    """Answer the sender of ``message`` from ``sender_address`` with a mail template.

    ``to``: the address acted for (a verified sender, or the address that
    confirmed), when it is a mail address; else the envelope sender. What the
    sender wrote goes into the templates only as variables, never into the
    header strings themselves.
    """
    recipient = to if to and "@" in to else message.route_from
    variables.update(sender=recipient, from_address=sender_address, subject=subject)
    response = view.respond(variables, Body=template, From="{{ from_address }}", To="{{ sender }}",
                            Subject="{{ subject }}")
    if message["message-id"]:
        response["In-Reply-To"] = message["message-id"]
    settings.relay.deliver(response)
