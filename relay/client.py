"""``Relay``: the handler-side object of the guide's ``settings.relay``."""

from __future__ import annotations

import os
import re
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import getaddresses, parseaddr
from typing import Any

import redis

from lamson import queues
from lamson.connection import connect
from lamson.queue import as_bytes

_BCC = re.compile(rb"^Bcc:.*?\r?\n(?![ \t])", re.IGNORECASE | re.MULTILINE | re.DOTALL)


def envelope_of(message: Any) -> tuple[str, list[str]]:
    """Envelope sender and recipients from a message's headers (From; To, Cc, Bcc).

    A message object with header access (MailResponse, MailRequest, email
    Message) is read directly; bytes are parsed, headers only.
    """
    if isinstance(message, bytes | bytearray | memoryview | str):
        raw = message.encode("utf-8", "surrogateescape") if isinstance(message, str) else bytes(message)
        headers: Any = BytesHeaderParser(policy=SMTP_POLICY).parsebytes(raw)
    else:
        headers = message
    sender = parseaddr(str(headers.get("From") or ""))[1]
    fields = [str(headers.get(name) or "") for name in ("To", "Cc", "Bcc")]
    rcpts = [addr for _, addr in getaddresses(fields) if addr]
    return sender, list(dict.fromkeys(rcpts))


def strip_bcc(data: bytes) -> bytes:
    """Remove Bcc headers (with their continuation lines) from the header block only."""
    if b"bcc:" not in data[:65536].lower():
        return data
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    return _BCC.sub(b"", head + (b"\r\n" if sep == b"\r\n\r\n" else b"\n")).rstrip(b"\r\n") + sep + body


class Relay:
    """Sends messages by enqueueing them for the relay worker.

    ``host``/``port`` name the smart host the relay worker delivers to (the
    guide's ``relay_config``). Redis comes from ``connection``, ``redis_url``,
    ``LAMSON_REDIS_URL``, or the default local Redis, resolved on first use.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8825, debug: int = 0, *,
                 redis_url: str | None = None, connection: redis.Redis | None = None,
                 retries: list[int] | None = None) -> None:
        self.host = host
        self.port = int(port)
        self.debug = debug
        self.redis_url = redis_url
        self.retries = retries
        self._conn = connection

    @property
    def connection(self) -> redis.Redis:
        if self._conn is None:
            url = self.redis_url or os.environ.get("LAMSON_REDIS_URL") or "redis://127.0.0.1:6379/0"
            self._conn = connect(url)
        return self._conn

    def deliver(self, message: Any, To: str | list[str] | None = None, From: str | None = None) -> str:
        """Queue ``message`` for delivery; returns the rq job id.

        Recipients default to the To/Cc/Bcc headers (Bcc is removed from what
        is sent), the sender to the From header; ``From=""`` sends with the
        null reverse-path ``<>`` (bounces, DSNs).
        """
        sender, rcpts = envelope_of(message)
        data = as_bytes(message)
        if To is not None:
            rcpts = [To] if isinstance(To, str) else list(To)
        if From is not None:
            sender = From
        if not rcpts:
            raise ValueError("message has no recipients (no To/Cc/Bcc and no To= given)")
        for address in [sender, *rcpts]:
            if any(ch in address for ch in "\r\n\x00<>"):
                raise ValueError(f"refusing envelope address with control or bracket characters: {address!r}")
        job = queues.enqueue_delivery(self.connection, strip_bcc(data), sender, rcpts, host=self.host,
                                      port=self.port, retries=self.retries)
        return job.id

    def send(self, To: str, From: str, Subject: str, Body: str) -> str:
        """Build a plain-text message and deliver it (a convenience the guide's Relay had)."""
        from lamson.mail import MailResponse

        return self.deliver(MailResponse(To=To, From=From, Subject=Subject, Body=Body))

    def __repr__(self) -> str:
        return f"Relay(host={self.host!r}, port={self.port})"
