"""Sending as the other side of a conversation: a message from the browser to the application's receiver.

The message goes over SMTP (smtplib) to ``receiver_config``'s host and port, the way any mail client
would send it, so it takes the real pipeline: the receiver's checks, the spool, the router workers,
the handler's state. The envelope sender is the address the developer typed (the application answers
it). A copy is kept in ``run/web-sent`` (a Maildir, written by lamson.maildir), so the developer's own
side of a conversation is in the thread next to the application's replies.

Input is checked before anything is sent: one address per From / To entry, and no CR, LF or NUL in
any header value (a header injection would let a page add recipients or headers), else 400.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from lamson import maildir

#: Largest body accepted from the page (characters).
MAX_BODY = 10 * 1024 * 1024
MAX_RECIPIENTS = 50
SMTP_TIMEOUT = 30.0


class ComposeError(Exception):
    """The message cannot be sent: ``status`` is the HTTP answer (400 bad input, 502 refused, 503 unreachable)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


@dataclass(frozen=True)
class Draft:
    """A checked message to send: header forms (with display names) and bare envelope addresses."""

    mail_from: str
    sender: str
    to: tuple[str, ...]
    recipients: tuple[str, ...]
    subject: str
    body: str
    in_reply_to: str = ""
    references: str = ""


@dataclass(frozen=True)
class Sent:
    key: str
    message_id: str
    reply: str


def _no_breaks(value: str, field: str) -> str:
    if any(c in value for c in "\r\n\x00"):
        raise ComposeError(400, f"{field} must not hold a line break (CR, LF) or NUL")
    return value


def one_address(value: Any, field: str) -> tuple[str, str]:
    """``(header form, bare address)`` of one address, or ComposeError(400)."""
    if not isinstance(value, str) or not value.strip():
        raise ComposeError(400, f"{field} must be an address such as someone@example.com")
    text = _no_breaks(value.strip(), field)
    try:
        found = getaddresses([text])
    except Exception:  # noqa: BLE001 - malformed input
        found = []
    if len(found) != 1:
        raise ComposeError(400, f"{field} must hold exactly one address, not {text!r}")
    addr = parseaddr(text)[1]
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>,;" for c in addr) or not addr.isascii():
        raise ComposeError(400, f"{field}: {text!r} is not an address (someone@example.com)")
    return text, addr


def draft_from(payload: Any) -> Draft:
    """The JSON body of ``POST /api/send`` checked into a :class:`Draft` (without the thread fields)."""
    if not isinstance(payload, dict):
        raise ComposeError(400, "the body must be a JSON object")
    mail_from, sender = one_address(payload.get("mail_from"), "mail_from")
    raw_to = payload.get("to")
    entries = raw_to if isinstance(raw_to, list) else [raw_to]
    if not entries or len(entries) > MAX_RECIPIENTS:
        raise ComposeError(400, f"to must name 1 to {MAX_RECIPIENTS} addresses")
    pairs = [one_address(entry, "to") for entry in entries]
    subject = payload.get("subject", "")
    body = payload.get("body", "")
    if not isinstance(subject, str) or not isinstance(body, str):
        raise ComposeError(400, "subject and body must be strings")
    if len(body) > MAX_BODY:
        raise ComposeError(400, f"the body is longer than {MAX_BODY} characters")
    return Draft(mail_from, sender, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs),
                 _no_breaks(subject, "subject")[:998], body)


def build(draft: Draft) -> tuple[bytes, str]:
    """The message's bytes (CRLF) and its Message-ID."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = draft.mail_from
    msg["To"] = ", ".join(draft.to)
    msg["Subject"] = draft.subject
    msg["Date"] = formatdate(localtime=True)
    message_id = make_msgid(domain=draft.sender.rpartition("@")[2] or None)
    msg["Message-ID"] = message_id
    if draft.in_reply_to:
        msg["In-Reply-To"] = _no_breaks(draft.in_reply_to, "in_reply_to")
        msg["References"] = _no_breaks(draft.references or draft.in_reply_to, "references")
    msg["X-Mailer"] = "lamson web"
    msg.set_content(draft.body if draft.body.endswith("\n") or not draft.body else draft.body + "\n")
    return msg.as_bytes(policy=SMTP), message_id


def send(draft: Draft, receiver: tuple[str, int], sent_dir: Path) -> Sent:
    """Send ``draft`` to ``receiver`` over SMTP with its envelope sender; keep a copy in ``sent_dir``.

    The copy is written only once the receiver took the message (250 to DATA), so ``sent`` holds
    what the application really received.
    """
    data, message_id = build(draft)
    host, port = receiver
    try:
        with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT) as smtp:
            smtp.ehlo_or_helo_if_needed()
            code, text = smtp.mail(draft.sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, text, draft.sender)
            for rcpt in draft.recipients:
                code, text = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    raise smtplib.SMTPRecipientsRefused({rcpt: (code, text)})
            code, text = smtp.data(data)
    except smtplib.SMTPRecipientsRefused as exc:
        (code, text), = list(exc.recipients.values())[:1] or [(0, b"")]
        raise ComposeError(502, f"the receiver refused: {code} {_text(text)}") from None
    except smtplib.SMTPResponseException as exc:
        raise ComposeError(502, f"the receiver refused: {exc.smtp_code} {_text(exc.smtp_error)}") from None
    except (TimeoutError, OSError, smtplib.SMTPException) as exc:
        raise ComposeError(503, f"the receiver at {host}:{port} is not reachable: {exc}") from None
    key = maildir.write(maildir.ensure(sent_dir), data)
    return Sent(key, message_id, f"{code} {_text(text)}")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
