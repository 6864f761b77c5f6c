"""The parked record: one format for mail set aside for good, whoever set it aside.

Every stage that gives up on a message (the spool at ``max_attempts``, the
screen, a handler that raised or refused, no route, the relay, a record
that cannot be read) writes the same file into a Maildir for people
(``run/undeliverable``, ``run/bounced``; docs/design.md "Parked mail")::

    X-Lamson-Envelope: {"v":2,"mail_from":...,"queue":"posts","attempts":1,...}
    X-Lamson-Reason: app.handlers.posts.START raised RuntimeError: ...
    <the message, byte for byte>

Headers prepended to the message, so mutt and ``lamson queue -get`` show it
as mail, and the envelope as the spool stores it, so ``lamson queue
-requeue`` (:mod:`lamson.requeue`) knows where the message came from
(``queue``: "incoming", a deferred group such as "posts", a Maildir queue
``q-NAME``, "outgoing") and for whom. A record that could not be decoded has
no envelope: only the reason is prepended and its bytes are kept as they
were, for a person to look at.

:func:`read` also reads the forms earlier versions wrote, so mail parked
before an upgrade can still be requeued.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from typing import Any

from lamson import groups, maildir
from lamson.envelope import Envelope
from lamson.groups import Kind

#: The ``extra`` key of a parked Maildir-queue message naming its folder, absolute (see :func:`record`).
QUEUE_DIR = "queue_dir"

#: Longest reason kept: one header line a mail reader still shows whole.
MAX_REASON = 900

_TAG = re.compile(rb"^X-Lamson-(Envelope-From|Envelope-To|Reason|Envelope|Quarantined): ?(.*?)\r?\n", re.I)


class NotParked(ValueError):
    """The bytes carry no envelope Lamson recorded: it did not park them, or could not read them."""


@dataclass(frozen=True)
class Parked:
    """A parked record read back: the envelope (None for an unreadable record), why, and the message."""

    envelope: Envelope | None
    reason: str
    message: bytes

    def sent_back(self) -> Envelope:
        """The envelope to send the message back with: the one recorded, its attempt count at 0.

        Raises :class:`NotParked` for an unreadable record: nothing says where it came from or for whom.
        """
        if self.envelope is None:
            raise NotParked("parked as an unreadable record: there is no envelope to requeue it with")
        return replace(self.envelope, attempts=0)


def _one_line(reason: str) -> bytes:
    """The reason as one header line: whitespace runs (CR, LF too) collapsed, no NUL, at most MAX_REASON
    characters, ASCII (anything else backslash-escaped), so no reason can add a header of its own."""
    safe = " ".join(reason.replace("\x00", " ").split())[:MAX_REASON]
    return safe.encode("ascii", "backslashreplace")


def _eol(data: bytes) -> bytes:
    """The message's own line ending, so the prepended headers do not mix two kinds (CRLF when unsure)."""
    head = data[:2000]
    return b"\n" if b"\n" in head and b"\r\n" not in head else b"\r\n"


def _located(envelope: Envelope) -> Envelope:
    """A Maildir-queue message with its folder recorded, absolute.

    A message of a Maildir queue (group ``q-NAME``, :class:`lamson.workers.QueueReceiver`) carries
    its folder as its peer (lamson.spool.decode_plain), as the worker was given it: often relative to
    the worker's working directory, which is the only place that relative path means anything. The
    record keeps it absolute, so ``lamson queue -requeue`` run from anywhere puts the message back
    into that folder.
    """
    if groups.named(envelope.queue).kind is not Kind.QUEUE or QUEUE_DIR in envelope.extra or not envelope.peer:
        return envelope
    return replace(envelope, extra={**envelope.extra, QUEUE_DIR: os.path.abspath(envelope.peer)})


def record(envelope: Envelope | None, reason: str, data: bytes) -> bytes:
    """The parked record's bytes: ``X-Lamson-Envelope`` (unless None) and ``X-Lamson-Reason``, then ``data``.

    For writers that do not write a Maildir themselves (the Router's ``UNDELIVERABLE_QUEUE``, which
    a 1.x application may have replaced by a queue of its own).
    """
    eol = _eol(data)
    head = b"" if envelope is None else b"X-Lamson-Envelope: " + _located(envelope).to_json() + eol
    return head + b"X-Lamson-Reason: " + _one_line(reason) + eol + data


def park(into: str | os.PathLike[str], envelope: Envelope | None, reason: str, data: bytes, *,
         sync: bool = True) -> str:
    """Write the parked record into the Maildir ``into`` (created if needed); return its key there.

    ``envelope=None`` for a record nothing could decode: its bytes are kept as they were.
    Durable on return unless ``sync=False`` (a spool that does not fsync either).
    """
    return maildir.write(maildir.ensure(into), record(envelope, reason, data), sync=sync)


def read(data: bytes) -> Parked:
    """A parked record read back, in the current form or any earlier one.

    Earlier forms: the spool's (``X-Lamson-Envelope`` and ``X-Lamson-Reason``, always CRLF), an
    unreadable record's (``X-Lamson-Reason`` only), the Router's (``X-Lamson-Envelope-From`` /
    ``-To``, which said nothing of the group: read as "incoming"), and ``X-Lamson-Quarantined``
    (the reason, in older versions). Raises :class:`NotParked` when no ``X-Lamson-*`` header leads
    the bytes, or the envelope recorded cannot be read.
    """
    tags: dict[str, str] = {}
    while match := _TAG.match(data):
        tags.setdefault(match.group(1).decode().lower(), match.group(2).decode("utf-8", "replace"))
        data = data[match.end():]
    if not tags:
        raise NotParked("no X-Lamson-Envelope headers: not a message Lamson parked")
    reason = tags.get("reason") or (f"quarantined: {tags['quarantined']}" if "quarantined" in tags else "")
    envelope: Envelope | None = None
    if "envelope" in tags:
        try:
            envelope = Envelope.from_json(tags["envelope"])
        except (ValueError, TypeError, KeyError) as exc:  # bad JSON, unknown schema, missing fields
            raise NotParked(f"its X-Lamson-Envelope cannot be read ({type(exc).__name__}: {exc})") from None
    elif "envelope-to" in tags:
        sender = tags.get("envelope-from", "")
        envelope = Envelope(mail_from="" if sender in ("None", "<>") else sender,
                            rcpt_tos=(tags["envelope-to"],), peer="requeued")
    return Parked(envelope, reason, data)


def envelope_of(message: Any) -> Envelope | None:
    """The envelope to park a message with, for code that holds a message rather than a spool record.

    In a router worker every message carries the envelope it was spooled with (``message.envelope``:
    its group, id, attempts, peer); it is kept, with the recipients narrowed to the one being routed
    (``message.To``). Anything else (Lamson 1.x code, unit tests, raw bytes) gets one from its
    ``From``/``To`` (a MailRequest's attributes, else its headers) in the "incoming" group. None when no recipient is
    known: such a record cannot be sent anywhere again.
    """
    if not hasattr(message, "To"):  # bytes, str, an email.message.Message: its headers say
        from lamson.queue import as_bytes

        headers = BytesHeaderParser(policy=compat32).parsebytes(as_bytes(message))
        sender = parseaddr(str(headers.get("From") or ""))[1]
        rcpts = tuple(dict.fromkeys(a for _, a in getaddresses([str(v) for v in headers.get_all("To", [])]) if a))
        peer = ""
    else:
        sender = _bare(getattr(message, "From", None))
        to = getattr(message, "To", None)
        rcpts = tuple(r for r in (_bare(t) for t in (to if isinstance(to, list | tuple) else [to])) if r)
        peer = str(getattr(message, "Peer", "") or "")
    spooled = getattr(message, "envelope", None)
    if isinstance(spooled, Envelope):
        return replace(spooled, rcpt_tos=rcpts or spooled.rcpt_tos)
    if not rcpts:
        return None
    return Envelope(mail_from=sender, rcpt_tos=rcpts, peer=peer)


def _bare(address: Any) -> str:
    """An address as the envelope holds it: no display name, no angle brackets; ``None``/``<>`` is ""."""
    if address is None:
        return ""
    text = str(address).strip()
    if "<" in text:
        text = parseaddr(text)[1]
    return text.strip()
