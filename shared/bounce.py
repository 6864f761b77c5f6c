"""Bounces: delivery status notifications, and when not to answer mail at all.

:func:`detect` reads RFC 3464 reports (``multipart/report;
report-type=delivery-status``) and the common non-standard formats (Exim,
qmail, Postfix/Sendmail plain text, Exchange) and scores how bounce-like a
message is. Handlers use :func:`bounce_to` to route bounces to states, and
:func:`auto_reply_allowed` (RFC 3834) before sending any automatic answer.

This module reads messages only through the small :class:`MailRequest`
surface (``to_message()``, ``From``, ``msg[name]``, ``body()``), so it does
not import :mod:`lamson.mail`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamson.mail import MailRequest

__all__ = [
    "BounceAnalysis",
    "auto_reply_allowed",
    "auto_reply_refusal",
    "bounce_to",
    "detect",
    "status_meaning",
]

#: RFC 3463 status classes.
CLASSES = {
    "2": "Success",
    "4": "Persistent transient failure",
    "5": "Permanent failure",
}
#: RFC 3463 subjects (the middle number).
SUBJECTS = {
    "0": "Other or undefined status",
    "1": "Addressing status",
    "2": "Mailbox status",
    "3": "Mail system status",
    "4": "Network and routing status",
    "5": "Mail delivery protocol status",
    "6": "Message content or media status",
    "7": "Security or policy status",
}
#: RFC 3463 detail codes (subject.detail).
DETAILS = {
    "0.0": "Other undefined status",
    "1.0": "Other address status",
    "1.1": "Bad destination mailbox address",
    "1.2": "Bad destination system address",
    "1.3": "Bad destination mailbox address syntax",
    "1.4": "Destination mailbox address ambiguous",
    "1.5": "Destination mailbox address valid",
    "1.6": "Mailbox has moved",
    "1.7": "Bad sender's mailbox address syntax",
    "1.8": "Bad sender's system address",
    "2.0": "Other or undefined mailbox status",
    "2.1": "Mailbox disabled, not accepting messages",
    "2.2": "Mailbox full",
    "2.3": "Message length exceeds administrative limit",
    "2.4": "Mailing list expansion problem",
    "3.0": "Other or undefined mail system status",
    "3.1": "Mail system full",
    "3.2": "System not accepting network messages",
    "3.3": "System not capable of selected features",
    "3.4": "Message too big for system",
    "3.5": "System incorrectly configured",
    "4.0": "Other or undefined network or routing status",
    "4.1": "No answer from host",
    "4.2": "Bad connection",
    "4.3": "Directory server failure",
    "4.4": "Unable to route",
    "4.5": "Mail system congestion",
    "4.6": "Routing loop detected",
    "4.7": "Delivery time expired",
    "5.0": "Other or undefined protocol status",
    "5.1": "Invalid command",
    "5.2": "Syntax error",
    "5.3": "Too many recipients",
    "5.4": "Invalid command arguments",
    "5.5": "Wrong protocol version",
    "6.0": "Other or undefined media error",
    "6.1": "Media not supported",
    "6.2": "Conversion required and prohibited",
    "6.3": "Conversion required but not supported",
    "6.4": "Conversion with loss performed",
    "6.5": "Conversion failed",
    "7.0": "Other or undefined security status",
    "7.1": "Delivery not authorized, message refused",
    "7.2": "Mailing list expansion prohibited",
    "7.3": "Security conversion required but not possible",
    "7.4": "Security features not supported",
    "7.5": "Cryptographic failure",
    "7.6": "Cryptographic algorithm not supported",
    "7.7": "Message integrity failure",
}

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SUBJECTS = re.compile(
    r"undeliver|returned mail|delivery (status notification|fail|problem)|mail delivery failed"
    r"|failure notice|delivery has failed|could not be delivered|returned to sender|non.?delivery",
    re.IGNORECASE,
)
_DAEMONS = re.compile(r"mailer-daemon|postmaster|mail delivery (subsystem|system)", re.IGNORECASE)
_BODY_MARKERS = re.compile(
    r"could not be delivered|wasn't able to deliver|was not delivered|delivery to the following"
    r"|permanent(ly)? (error|fatal)|user unknown|no such user|mailbox (unavailable|full)"
    r"|address rejected|does not exist|over quota",
    re.IGNORECASE,
)
_ADDRESS = re.compile(r"<?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?")


def status_meaning(status: str | None) -> str:
    """Human meaning of an enhanced status code such as ``"5.1.1"``."""
    if not status:
        return ""
    klass, _, rest = status.partition(".")
    subject = rest.partition(".")[0]
    detail = DETAILS.get(rest) or SUBJECTS.get(subject, "Unknown status")
    return f"{CLASSES.get(klass, 'Unknown class')}: {detail}"


@dataclass
class BounceAnalysis:
    """What a delivery report says. ``score`` is 0..1: how bounce-like the message is."""

    score: float = 0.0
    status: str | None = None
    action: str | None = None
    final_recipient: str | None = None
    original_recipient: str | None = None
    reporting_mta: str | None = None
    remote_mta: str | None = None
    diagnostic_code: str | None = None
    #: "dsn" (RFC 3464), "heuristic" (non-standard formats) or None.
    kind: str | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def meaning(self) -> str:
        """E.g. ``"Permanent failure: Bad destination mailbox address"``."""
        return status_meaning(self.status)

    @property
    def primary_status(self) -> tuple[int, int, int] | None:
        if not self.status:
            return None
        a, b, c = (int(x) for x in self.status.split("."))
        return a, b, c

    def is_hard(self) -> bool:
        """A permanent failure: status 5.x.x (or ``Action: failed`` with no status)."""
        if self.status:
            return self.status.startswith("5")
        return self.score > 0 and (self.action or "") == "failed"

    def is_soft(self) -> bool:
        """A transient failure: status 4.x.x or ``Action: delayed``."""
        if self.status:
            return self.status.startswith("4")
        return self.score > 0 and (self.action or "") == "delayed"

    def error_for_humans(self) -> str:
        parts = [self.meaning or "Delivery problem"]
        if self.final_recipient:
            parts.append(f"for {self.final_recipient}")
        if self.diagnostic_code:
            parts.append(f"({self.diagnostic_code})")
        return " ".join(parts)


def _field_value(value: str | None) -> str | None:
    """``rfc822; user@example.com`` → ``user@example.com``; ``dns; mx.example`` → ``mx.example``."""
    if value is None:
        return None
    value = " ".join(str(value).split())
    if ";" in value:
        value = value.split(";", 1)[1].strip()
    return value or None


def _status_parts(message: Message) -> list[Message]:
    """The field blocks of the first message/delivery-status part."""
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                return [p for p in payload if isinstance(p, Message)]
            if isinstance(payload, str):  # unparsed: read the blocks ourselves via the stdlib
                from email.parser import Parser

                return [
                    Parser().parsestr(block, headersonly=True) for block in re.split(r"\r?\n\r?\n", payload)
                ]
    return []


def _read_dsn(message: Message, found: BounceAnalysis) -> None:
    blocks = _status_parts(message)
    if not blocks:
        return
    found.kind = "dsn"
    for block in blocks:
        found.reporting_mta = found.reporting_mta or _field_value(block.get("Reporting-MTA"))
        if block.get("Final-Recipient") or block.get("Status") or block.get("Action"):
            found.final_recipient = _field_value(block.get("Final-Recipient"))
            found.original_recipient = _field_value(block.get("Original-Recipient"))
            found.action = (_field_value(block.get("Action")) or "").lower() or None
            status = _STATUS.search(str(block.get("Status") or ""))
            found.status = ".".join(status.groups()) if status else None
            found.remote_mta = _field_value(block.get("Remote-MTA"))
            found.diagnostic_code = _field_value(block.get("Diagnostic-Code"))
            break


def detect(message: MailRequest) -> BounceAnalysis:
    """Analyse a :class:`~lamson.mail.MailRequest`; the result is cached on it."""
    cached = getattr(message, "_bounce_analysis", None)
    if cached is not None:
        return cached
    try:
        found = _detect(message)
    except Exception as exc:  # noqa: BLE001 - analysis of odd mail must not break a handler
        found = BounceAnalysis(reasons=[f"analysis failed: {type(exc).__name__}"])
    try:
        message._bounce_analysis = found  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return found


def _detect(message: MailRequest) -> BounceAnalysis:
    found = BounceAnalysis()
    score = 0.0
    parsed = message.to_message()
    content_type = parsed.get_content_type()
    report_type = str(parsed.get_param("report-type", "") or "").lower()
    if content_type == "multipart/report" and report_type == "delivery-status":
        score += 0.5
        found.reasons.append("multipart/report; report-type=delivery-status")
    _read_dsn(parsed, found)
    if found.kind == "dsn":
        score += 0.4
        found.reasons.append("message/delivery-status part")
    if getattr(message, "From", None) == "" or (message["Return-Path"] or "").strip() == "<>":
        score += 0.1
        found.reasons.append("null sender")
    if _DAEMONS.search(message["From"] or ""):
        score += 0.2
        found.reasons.append("From a mailer daemon")
    if _SUBJECTS.search(message["Subject"] or ""):
        score += 0.2
        found.reasons.append("bounce-like Subject")
    failed = message["X-Failed-Recipients"]
    if failed:
        score += 0.3
        found.reasons.append("X-Failed-Recipients")
    if found.kind is None and score > 0:
        body = message.body()[:20000]
        if _BODY_MARKERS.search(body):
            score += 0.2
            found.reasons.append("bounce-like body text")
        _read_text_report(body, failed, found)
    found.score = min(score, 1.0)
    return found


def _read_text_report(body: str, failed: str | None, found: BounceAnalysis) -> None:
    """Fill status/recipient from a non-standard (plain text) bounce."""
    found.kind = "heuristic"
    status = _STATUS.search(body)
    if status:
        found.status = ".".join(status.groups())
    else:  # no enhanced code: an SMTP reply code on its own (e.g. "550 User unknown")
        reply = re.search(r"\b([45])\d\d[ -]", body)
        if reply:
            found.status = f"{reply.group(1)}.0.0"
    found.action = {"5": "failed", "4": "delayed"}.get((found.status or " ")[0])
    recipient = _ADDRESS.search(failed or "") or _ADDRESS.search(body)
    if recipient:
        found.final_recipient = recipient.group(1)
    line = next((ln.strip() for ln in body.splitlines() if re.search(r"\b[45]\d\d\b", ln)), None)
    found.diagnostic_code = line[:300] if line else None


def bounce_to(soft: Callable[..., Any] | None = None, hard: Callable[..., Any] | None = None) -> Callable:
    """Send bounces to other states: ``@bounce_to(soft=SOFT_BOUNCE, hard=HARD_BOUNCE)``.

    A hard bounce calls ``hard(message, *args, **kwargs)`` and a soft one
    ``soft(...)`` instead of the decorated state, whose return value (the next
    state) they supply. A bounce with no state for its kind, or a message that
    is not a bounce, goes to the decorated state as usual.
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(message: Any, *args: Any, **kwargs: Any) -> Any:
            if message.is_bounce():
                report = detect(message)
                if hard is not None and report.is_hard():
                    return hard(message, *args, **kwargs)
                if soft is not None and report.is_soft():
                    return soft(message, *args, **kwargs)
            return func(message, *args, **kwargs)

        return wrapper

    return decorator


_LIST_HEADERS = ("List-Id", "List-Post", "List-Unsubscribe")
_SUPPRESS = {"all", "autoreply", "oof"}


def auto_reply_refusal(message: MailRequest) -> str | None:
    """Why an automatic reply to ``message`` must not be sent (RFC 3834), or None.

    Refused: bounces; the null sender (envelope ``<>``, or ``Return-Path:
    <>`` when there is no envelope); ``Auto-Submitted`` other than ``no``;
    ``Precedence: bulk/list/junk``; mailing-list mail (``List-Id``,
    ``List-Post``, ``List-Unsubscribe``); Microsoft's ``X-Auto-Response-Suppress``
    naming All, AutoReply or OOF; other autoresponders' ``X-Autoreply`` /
    ``X-Autorespond``; and senders named ``MAILER-DAEMON``, ``owner-*`` or
    ``*-request`` (RFC 3834 section 2).
    """
    sender = getattr(message, "From", None)
    if sender == "":
        return "null envelope sender <>"
    if sender is None and (message["Return-Path"] or "").strip() == "<>":
        return "null Return-Path <>"
    auto = (message["Auto-Submitted"] or "").split(";")[0].strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = (message["Precedence"] or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"Precedence: {precedence}"
    for name in _LIST_HEADERS:
        if name in message:
            return f"mailing list mail ({name})"
    suppress = {v.strip().lower() for v in (message["X-Auto-Response-Suppress"] or "").split(",")}
    if suppress & _SUPPRESS:
        return "X-Auto-Response-Suppress"
    for name in ("X-Autoreply", "X-Autorespond"):
        if name in message:
            return f"sent by an autoresponder ({name})"
    local = (sender or _header_address(message["From"])).partition("@")[0].lower()
    if local == "mailer-daemon" or local.startswith("owner-") or local.endswith("-request"):
        return f"sender {local!r} is a mail system or list address"
    if message.is_bounce():
        return "message is a bounce"
    return None


def auto_reply_allowed(message: MailRequest) -> bool:
    """True when an automatic reply is allowed (see :func:`auto_reply_refusal`)."""
    return auto_reply_refusal(message) is None


def _header_address(value: str | None) -> str:
    import email.utils

    return email.utils.parseaddr(value or "")[1]
