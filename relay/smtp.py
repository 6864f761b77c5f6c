"""SMTP delivery to the smart host: one kept-open connection per (host, port).

Opening an SMTP session costs several round trips; the relay worker runs
jobs one after another in one process, so it reuses the session between
jobs and reconnects once when the server has dropped it.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import time
from dataclasses import dataclass, field

log = logging.getLogger("lamson.relay")

_EOL = re.compile(rb"\r\n|\r|\n")

#: Reconnect instead of reusing a session idle for longer than this (servers drop idle clients).
MAX_IDLE = 60.0


def normalise_eol(data: bytes) -> bytes:
    """Every line ends in CRLF: a bare CR or LF can never end DATA early at the smart host."""
    return _EOL.sub(b"\r\n", data)


@dataclass(frozen=True)
class Security:
    """How to talk to one SMTP server: TLS, authentication, LMTP (issue 13).

    ``starttls``: "no", "opportunistic" (use it when offered: delivery by MX) or
    "required" (refuse to send without it). ``ssl``: implicit TLS (port 465).
    Certificates are verified unless ``verify`` is False; ``ca_file`` adds a CA.
    Credentials never come from the outbox (it holds no secrets): the relay
    worker reads them from ``relay_config`` (or a file or environment variable).
    """

    ssl: bool = False
    starttls: str = "no"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    lmtp: bool = False
    verify: bool = True
    ca_file: str | None = None


PLAIN = Security()


class Connections:
    """Kept-open SMTP sessions, keyed by (host, port)."""

    def __init__(self, timeout: float = 30.0, local_hostname: str | None = None) -> None:
        self.timeout = timeout
        self.local_hostname = local_hostname or socket.gethostname()
        self._open: dict[tuple[str, int], tuple[smtplib.SMTP, float]] = {}

    def _connect(self, host: str, port: int) -> smtplib.SMTP:
        smtp = smtplib.SMTP(host, port, local_hostname=self.local_hostname, timeout=self.timeout)
        smtp.ehlo_or_helo_if_needed()
        return smtp

    def get(self, host: str, port: int) -> tuple[smtplib.SMTP, bool]:
        """A session and whether it was reused (a reused one may turn out dead)."""
        entry = self._open.pop((host, port), None)
        if entry is not None:
            smtp, last_used = entry
            if time.monotonic() - last_used < MAX_IDLE:
                return smtp, True
            self._quit(smtp)
        return self._connect(host, port), False

    def put(self, host: str, port: int, smtp: smtplib.SMTP) -> None:
        self._open[(host, port)] = (smtp, time.monotonic())

    def discard(self, smtp: smtplib.SMTP) -> None:
        self._quit(smtp)

    def close_all(self) -> None:
        while self._open:
            _, (smtp, _) = self._open.popitem()
            self._quit(smtp)

    @staticmethod
    def _quit(smtp: smtplib.SMTP) -> None:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def send(self, host: str, port: int, mail_from: str, rcpt_tos: list[str], data: bytes) -> dict[str, tuple[int, bytes]]:
        """One SMTP transaction; returns the refused recipients (as smtplib does).

        A session that was reused and turns out closed is replaced once; any
        error leaves no session behind, so the next job starts clean.
        """
        for attempt in (1, 2):
            smtp, reused = self.get(host, port)
            try:
                options = []
                if needs_smtputf8(mail_from, rcpt_tos) and not smtp.has_extn("smtputf8"):
                    # RFC 6531 3.5: a non-ASCII address cannot be sent without SMTPUTF8 (nor rewritten).
                    raise smtplib.SMTPResponseException(
                        553, b"5.6.7 the smart host does not offer SMTPUTF8, needed for a non-ASCII address")
                if smtp.has_extn("smtputf8") and (needs_smtputf8(mail_from, rcpt_tos) or not headers_ascii(data)):
                    options.append("SMTPUTF8")  # UTF-8 headers (RFC 6532) when it is offered
                if smtp.has_extn("8bitmime") and not data.isascii():
                    options.append("BODY=8BITMIME")
                refused = smtp.sendmail(mail_from, rcpt_tos, data, mail_options=options)
            except (smtplib.SMTPServerDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.discard(smtp)
                if reused and attempt == 1:
                    log.info("kept-open session to %s:%s was closed (%s); reconnecting", host, port, exc)
                    continue
                raise
            except smtplib.SMTPRecipientsRefused:
                self.put(host, port, smtp)  # smtplib already sent RSET
                raise
            except smtplib.SMTPResponseException:
                # The transaction was refused but the session is sound: reset it and keep it.
                try:
                    smtp.rset()
                    self.put(host, port, smtp)
                except (smtplib.SMTPException, OSError):
                    self.discard(smtp)
                raise
            except (smtplib.SMTPException, OSError):
                self.discard(smtp)
                raise
            self.put(host, port, smtp)
            return refused
        raise AssertionError("unreachable")


def headers_ascii(data: bytes) -> bool:
    """True when the header block is ASCII (UTF-8 headers, RFC 6532, need SMTPUTF8)."""
    end = data.find(b"\r\n\r\n")
    return (data if end < 0 else data[:end]).isascii()


def needs_smtputf8(mail_from: str, rcpt_tos: list[str]) -> bool:
    return not all(addr.isascii() for addr in [mail_from, *rcpt_tos])
