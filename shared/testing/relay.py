"""Capturing what handlers send, so application tests need no relay and no Redis.

An application's ``config/testing.py`` sets ``settings.relay =
CapturingRelay()``; handlers call ``relay.deliver(...)`` as in production and
the tests look at :func:`queue` / :func:`delivered`.
"""

from __future__ import annotations

import re
import threading
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import getaddresses, parseaddr
from typing import Any

from lamson.queue import as_bytes


class Captured:
    """The messages captured in this process, oldest first (one entry per recipient)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.lock = threading.Lock()

    def add(self, message: Any) -> None:
        with self.lock:
            self.messages.append(message)

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def snapshot(self) -> list[Any]:
        with self.lock:
            return list(self.messages)


#: Where every CapturingRelay puts what it is given, unless told otherwise.
SENT = Captured()


def envelope_from_headers(data: bytes) -> tuple[str, list[str]]:
    """Sender and recipients as a relay would take them from the headers."""
    headers = BytesHeaderParser(policy=SMTP_POLICY).parsebytes(data)
    sender = parseaddr(str(headers.get("From", "")))[1]
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
    rcpts = [addr for _, addr in getaddresses(fields) if addr]
    return sender, list(dict.fromkeys(rcpts))


class CapturingRelay:
    """A stand-in for ``lamson.relay.Relay`` that keeps messages instead of sending them."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8825, debug: int = 0, *,
                 captured: Captured | None = None, **_ignored: Any) -> None:
        self.host = host
        self.port = port
        self.debug = debug
        self.captured = captured if captured is not None else SENT

    def deliver(self, message: Any, To: str | list[str] | None = None, From: str | None = None) -> str:
        """Capture ``message`` once per recipient, as a MailRequest; return a fake job id."""
        from lamson.mail import MailRequest

        data = as_bytes(message)
        sender, rcpts = envelope_from_headers(data)
        if To is not None:
            rcpts = [To] if isinstance(To, str) else list(To)
        if From is not None:
            sender = From
        if not rcpts:
            raise ValueError("message has no recipients (no To/Cc/Bcc and no To= given)")
        for rcpt in rcpts:
            self.captured.add(MailRequest("relay", sender, rcpt, data))
        return f"captured-{len(self.captured.messages)}"

    def send(self, To: str, From: str, Subject: str, Body: str) -> str:
        from lamson.mail import MailResponse

        return self.deliver(MailResponse(To=To, From=From, Subject=Subject, Body=Body))

    def __repr__(self) -> str:
        return f"CapturingRelay({len(self.captured.messages)} captured)"


def queue() -> list[Any]:
    """Every message captured so far (MailRequest, one per recipient), oldest first."""
    return SENT.snapshot()


def clear_queue() -> None:
    """Forget the captured messages."""
    SENT.clear()


def delivered(pattern: str, body: str | None = None) -> Any:
    """The last captured message whose recipient matches ``pattern`` (and body ``body``), else None.

    Both are regexes searched case-insensitively.
    """
    to_re = re.compile(pattern, re.IGNORECASE)
    body_re = re.compile(body, re.IGNORECASE | re.DOTALL) if body is not None else None
    for message in reversed(SENT.snapshot()):
        if not to_re.search(str(message.To)):
            continue
        if body_re is not None and not body_re.search(message.Data.decode("utf-8", "replace")):
            continue
        return message
    return None
