"""A client that remembers what the server answered to every message it sent.

Each message has a unique Message-ID and a subject carrying it; the ledger
records the final reply code per Message-ID. A session that breaks (the
receiver was killed) is reopened and the message tried again, as an MTA
would: that is where a kill mid-DATA can make a duplicate.
"""

from __future__ import annotations

import smtplib
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default
from pathlib import Path

from lamson import maildir


@dataclass
class Ledger:
    """Message-ID -> last reply code (250 means the server took responsibility)."""

    codes: dict[str, int] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, msgid: str, code: int) -> None:
        with self.lock:
            self.codes[msgid] = code
            self.attempts[msgid] = self.attempts.get(msgid, 0) + 1

    def accepted(self) -> set[str]:
        return {m for m, c in self.codes.items() if c == 250}


def message(client: int, i: int, run: str) -> tuple[str, bytes]:
    msgid = f"<{run}.{client}.{i}@ledger.example.org>"
    data = (f"From: client{client}@example.org\r\nTo: hello@test.com\r\nSubject: ledger {msgid}\r\n"
            f"Message-ID: {msgid}\r\n\r\nMessage {i} of client {client}.\r\n").encode()
    return msgid, data


def session(ledger: Ledger, port: int, client: int, count: int, run: str, *, pause: float = 0.0,
            deadline: float = 120.0, host: str = "127.0.0.1") -> None:
    """Send ``count`` messages over one SMTP session, reopening it whenever it breaks."""
    stop_at = time.monotonic() + deadline
    smtp: smtplib.SMTP | None = None
    try:
        for i in range(count):
            msgid, data = message(client, i, run)
            while time.monotonic() < stop_at:
                try:
                    if smtp is None:
                        smtp = smtplib.SMTP(host, port, timeout=30)
                    smtp.sendmail(f"client{client}@example.org", ["hello@test.com"], data)
                    ledger.record(msgid, 250)
                    break
                except smtplib.SMTPResponseException as exc:
                    ledger.record(msgid, exc.smtp_code)
                    if exc.smtp_code >= 500:
                        break
                except (smtplib.SMTPException, OSError):
                    ledger.record(msgid, 0)  # no answer: the connection broke
                    if smtp is not None:
                        smtp.close()
                    smtp = None
                time.sleep(0.1)
            if pause:
                time.sleep(pause)
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


def replies(queue_dir: Path) -> dict[str, int]:
    """In-Reply-To -> how many replies to that message reached the sink's Maildir."""
    seen: dict[str, int] = {}
    for key in maildir.keys(queue_dir):
        msg = message_from_bytes((queue_dir / "new" / key).read_bytes(), policy=default)
        ref = str(msg.get("In-Reply-To") or "")
        seen[ref] = seen.get(ref, 0) + 1
    return seen
