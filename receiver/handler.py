"""The aiosmtpd handler: cheap checks at MAIL and RCPT, spool + enqueue at DATA.

It answers 250 only after the spool has the message on stable storage
(sessions share their fsyncs: :mod:`lamson.receiver.commit`); any
failure to store is a 451 (the client keeps the message and retries), and
the spool leaves nothing half-written.

What it refuses, and why (docs/security.md has the table):

* RCPT for a domain the application does not serve: 550 5.7.1, so the
  receiver is never a relay for someone else's mail. Only a client that
  authenticated (AUTH on the submission listener, lamson.receiver.auth) may
  send to any domain, with ``submission_max_recipients`` instead of
  ``max_recipients``; its envelope says who it was (``extra["auth"]``).
* A non-ASCII address in a transaction that did not say ``SMTPUTF8`` at
  MAIL: 553 5.6.7 (RFC 6531 3.4: only a client that declared it may send
  one, and only then may the receiver pass it on as UTF-8).
* Message content with NUL octets: 554 5.6.0 (no text mail has them; the
  receiver offers neither BINARYMIME nor CHUNKING).
* More ``Received`` headers than ``max_received_headers``: 554 5.4.6 (a loop).

Bare CR and bare LF in the content are not refused but normalised to CRLF
before spooling, so whatever a handler forwards can never end DATA early at
the next server (SMTP smuggling), and lines mean the same to every stage.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from lamson.envelope import Envelope, new_id
from lamson.metrics import counts_refusals  # 4xx/5xx replies counted by reason (docs/operations.md)
from lamson.receiver.checks import (
    NULL_PATH,
    ServedDomains,
    count_received,
    is_postmaster,
    normalise_line_endings,
)
from lamson.receiver.commit import GroupCommit
from lamson.settings import DEFAULTS
from lamson.spool import Spool

log = logging.getLogger("lamson.receiver")

#: A UTF-8 address without the SMTPUTF8 parameter at MAIL (RFC 6531 3.4, the code Postfix uses).
UNDECLARED_UTF8 = "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter at MAIL FROM"


def received_header(env: Envelope, hostname: str) -> bytes:
    """The trace header (RFC 5321 4.4) this hop adds; mail loops are counted by these."""
    peer_ip = env.peer.split(":")[0] if env.peer else "unknown"
    helo = "".join(ch for ch in (env.helo or "unknown") if 32 < ord(ch) < 127)[:200] or "unknown"
    with_ = env.extra.get("protocol", "SMTP")
    one_rcpt = f"\r\n\tfor <{env.rcpt_tos[0]}>" if len(env.rcpt_tos) == 1 else ""
    text = (
        f"Received: from {helo} ([{peer_ip}])\r\n\tby {hostname} (Lamson) with {with_} id {env.id}"
        f"{one_rcpt};\r\n\t{formatdate(env.received_at)}\r\n"
    )
    return text.encode("utf-8", "replace")


def session_extra(session: Any, envelope: Any) -> dict[str, str]:
    """What the envelope records about the session: protocol (RFC 3848/6531 names), TLS, AUTH."""
    protocol = "UTF8SMTP" if envelope.smtp_utf8 else ("ESMTP" if session.extended_smtp else "SMTP")
    extra = {}
    if getattr(session, "ssl", None) is not None:
        protocol += "S"
        ssl_object = session.ssl.get("ssl_object")
        version = ssl_object.version() if ssl_object is not None else None
        extra["tls"] = str(version or "TLS")
    if getattr(session, "authenticated", False) and isinstance(session.auth_data, str):
        protocol += "A"
        extra["auth"] = session.auth_data
    return {"protocol": protocol, **extra}


class SpoolHandler:
    """aiosmtpd handler that stores each message durably and enqueues its routing job."""

    def __init__(
        self,
        spool: Spool,
        enqueue: Callable[[str, str], bool],
        *,
        max_recipients: int = DEFAULTS["max_recipients"],
        hostname: str | None = None,
        served: ServedDomains | None = None,
        max_received_headers: int = DEFAULTS["max_received_headers"],
        authenticated_max_recipients: int = DEFAULTS["submission_max_recipients"],
    ) -> None:
        self.spool = spool
        self.enqueue = enqueue
        self.committer = GroupCommit(spool, enqueue)
        self.max_recipients = max_recipients
        self.hostname = hostname or socket.gethostname()
        self.served = served if served is not None else ServedDomains(())
        self.max_received_headers = max_received_headers
        # (not auth_...: aiosmtpd takes handler attributes named auth_* for AUTH mechanisms)
        self.authenticated_max_recipients = authenticated_max_recipients

    @counts_refusals
    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]) -> str:
        # The path grammar was checked by the server's parser; a sender must still be a mailbox or <>.
        if address != NULL_PATH and "@" not in address:
            return "553 5.1.7 Sender address must be a mailbox (local@domain) or <>"
        if not address.isascii() and not envelope.smtp_utf8:  # aiosmtpd set smtp_utf8 from the parameters
            return UNDECLARED_UTF8
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    @counts_refusals
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        authenticated = bool(getattr(session, "authenticated", False))  # only the submission listener offers AUTH
        if len(envelope.rcpt_tos) >= (self.authenticated_max_recipients if authenticated else self.max_recipients):
            return "452 4.5.3 Too many recipients"
        if not address.isascii() and not envelope.smtp_utf8:
            return UNDECLARED_UTF8
        if is_postmaster(address):
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        local, at, domain = address.rpartition("@")
        if not at or not local or "\x00" in address:
            return "553 5.1.3 Recipient address must be a mailbox (local@domain)"
        if not authenticated and not self.served.serves(domain):
            return f"550 5.7.1 Relaying denied: this server does not accept mail for {domain[:255]}"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    @counts_refusals
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        peer = session.peer
        raw = envelope.original_content if envelope.original_content is not None else envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if b"\x00" in raw:
            return "554 5.6.0 Message content contains NUL octets"
        raw = normalise_line_endings(raw)
        hops = count_received(raw)
        if hops > self.max_received_headers:
            log.warning("554 mail loop from <%s>: %d Received headers", envelope.mail_from, hops)
            return f"554 5.4.6 Too many hops ({hops} Received headers): mail loop?"
        mail_from = envelope.mail_from or ""
        env = Envelope(
            mail_from="" if mail_from == NULL_PATH else mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or ""),
            helo=session.host_name or "",
            id=new_id(),
            received_at=time.time(),
            extra=session_extra(session, envelope),
        )
        data = received_header(env, self.hostname) + raw
        try:
            key, queued = await asyncio.wrap_future(self.committer.submit(env, data))
        except Exception as exc:  # disk full, permissions, Redis spool down: the client retries
            log.error("451 for %s from <%s>: cannot spool: %s", env.id, env.mail_from, exc,
                      extra={"lamson_id": env.id})
            return "451 4.3.0 Requested action aborted: local error in processing, try again later"
        log.info(
            "accepted %s from=<%s> to=%s size=%d key=%s%s",
            env.id, env.mail_from, ",".join(f"<{r}>" for r in env.rcpt_tos), len(data), key,
            "" if queued else " (not yet enqueued)",
            extra={"lamson_id": env.id},  # the id the rest of its journey is logged under (lamson.logs)
        )
        return f"250 2.0.0 OK queued as {env.id}"
