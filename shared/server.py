"""Lamson 1.x's ``lamson.server``, as this pipeline provides it.

The guide's ``config/boot.py`` does::

    from lamson.server import Relay, SMTPReceiver
    settings.relay = Relay(host=..., port=..., debug=1)
    settings.receiver = SMTPReceiver(settings.receiver_config['host'], settings.receiver_config['port'])

``Relay`` is :class:`lamson.relay.Relay` (handlers' mail goes to the relay
worker through Redis). ``SMTPReceiver`` is only a description here: the
receiver is its own program (run by ``lamson start``/supervisord) that reads
``receiver_config`` from the settings and runs no application code, so a
boot file that builds one must not open a port. ``SMTPError`` is what a
handler raises to refuse a message.
"""

from __future__ import annotations

import logging
from typing import Any

from lamson.relay import Relay

__all__ = ["Relay", "SMTPError", "SMTPReceiver", "undeliverable_message"]
# "QueueReceiver" joins __all__ once lamson.workers provides it (see __getattr__ below).

LOG = logging.getLogger("lamson.server")

#: RFC 5321 section 4.2 replies a handler may want to refuse with, and their usual text.
SMTP_REPLIES: dict[int, str] = {
    421: "Service not available, closing transmission channel",
    450: "Requested mail action not taken: mailbox unavailable",
    451: "Requested action aborted: local error in processing",
    452: "Requested action not taken: insufficient system storage",
    455: "Server unable to accommodate parameters",
    500: "Syntax error, command unrecognized",
    501: "Syntax error in parameters or arguments",
    502: "Command not implemented",
    503: "Bad sequence of commands",
    504: "Command parameter not implemented",
    521: "Host does not accept mail",
    550: "Requested action not taken: mailbox unavailable",
    551: "User not local",
    552: "Requested mail action aborted: exceeded storage allocation",
    553: "Requested action not taken: mailbox name not allowed",
    554: "Transaction failed",
    555: "MAIL FROM/RCPT TO parameters not recognized or not implemented",
}

#: The fallback text by reply class, for a code the table does not name.
_CLASS_TEXT = {2: "Success", 3: "Intermediate reply", 4: "Temporary failure", 5: "Permanent failure"}


class SMTPError(Exception):
    """A handler's refusal of a message with an SMTP reply code: ``raise SMTPError(550)``.

    ``str(err)`` is the reply line, ``"550 Requested action not taken:
    mailbox unavailable"``; ``message`` defaults to the standard text of
    the code (Lamson 1.x meant to do the same but its lookup never matched).
    CR and LF are replaced by spaces so the text can never add a line to an
    SMTP reply or a header. In this pipeline the message was already
    accepted when a handler sees it, so the router parks it with this reply
    as the reason (see ``Router.deliver``).
    """

    def __init__(self, code: int, message: str | None = None) -> None:
        if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 599:
            raise ValueError(f"SMTPError needs a reply code from 200 to 599, not {code!r}")
        self.code = code
        if message is None:
            message = SMTP_REPLIES.get(code) or _CLASS_TEXT[code // 100]
        self.message = " ".join(str(message).split())
        super().__init__(code, self.message)

    def __str__(self) -> str:
        return f"{self.code} {self.message}"

    def __repr__(self) -> str:
        return f"SMTPError({self.code!r}, {self.message!r})"


class SMTPReceiver:
    """Where the guide's boot says the receiver listens; it listens nowhere itself.

    The receiver program of the pipeline (``lamson start``, supervisord's
    ``receiver``) binds ``receiver_config`` from the settings, spools every
    message durably and runs no application code. A boot file's
    ``settings.receiver = SMTPReceiver(host, port)`` therefore only records
    the address: nothing is bound at construction, and :meth:`start` and
    :meth:`close` log what does the listening instead of doing it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | str = 8825) -> None:
        self.host = host
        self.port = int(port)

    def start(self) -> None:
        """Explain, in the log, that the receiver program listens, not this object."""
        LOG.info(
            "SMTPReceiver(%r, %d).start(): nothing to do in this process; the receiver program "
            "(lamson start / supervisord program 'receiver') listens on settings.receiver_config",
            self.host, self.port,
        )

    def close(self) -> None:
        """Nothing was opened; say so (stop the receiver with ``lamson stop``)."""
        LOG.info("SMTPReceiver(%r, %d).close(): nothing to close; `lamson stop` stops the receiver program",
                 self.host, self.port)

    def __repr__(self) -> str:
        return f"SMTPReceiver({self.host!r}, {self.port})"


def undeliverable_message(raw_message: Any, failure_type: str) -> str | None:
    """Keep a message nothing could handle in ``Router.UNDELIVERABLE_QUEUE``; return its key.

    Lamson 1.x's helper for code that processes mail outside the router.
    Without a queue the message is only logged, and None returned. It is
    kept as the Router keeps what it parks, a parked record (lamson.parked)
    with ``failure_type`` as the reason and an envelope made from its
    From/To, so ``lamson queue -keys -reasons`` and ``-requeue`` treat it
    like the rest.
    """
    from lamson import parked
    from lamson.queue import as_bytes
    from lamson.router import Router

    queue = Router.UNDELIVERABLE_QUEUE
    if queue is None:
        LOG.error("undeliverable message (%s) and no UNDELIVERABLE_QUEUE to keep it in", failure_type)
        return None
    data = raw_message.Data if isinstance(getattr(raw_message, "Data", None), bytes) else as_bytes(raw_message)
    key = queue.push(parked.record(parked.envelope_of(raw_message), failure_type, data))
    LOG.error("undeliverable message (%s) kept in %r as %s", failure_type, queue, key)
    return str(key)


def __getattr__(name: str) -> Any:
    # ---- QueueReceiver ------------------------------------------------------------
    # Lamson 1.x's QueueReceiver(queue_dir, sleep=10, ...) is written in lamson.workers
    # (a worker group consuming a Maildir queue). It is re-exported from there, lazily,
    # so that importing lamson.server never drags in the worker machinery (rq, the router).
    if name == "QueueReceiver":
        try:
            from lamson.workers import QueueReceiver
        except ImportError as exc:
            raise AttributeError("lamson.server.QueueReceiver: lamson.workers provides no QueueReceiver "
                                 f"in this installation ({exc})") from exc
        return QueueReceiver
    raise AttributeError(f"module 'lamson.server' has no attribute {name!r}")
