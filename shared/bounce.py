"""Bounces: delivery status notifications, and when not to answer mail at all.

:func:`detect` reads RFC 3464 reports (``multipart/report;
report-type=delivery-status``) and the common non-standard formats (Exim,
qmail, Postfix/Sendmail plain text, Exchange) and scores how bounce-like a
message is. Handlers use :func:`bounce_to` to route bounces to states, and
:func:`auto_reply_allowed` (RFC 3834) before sending any automatic answer.

This module reads messages only through the small :class:`MailRequest`
surface (``to_message()``, ``From``, ``msg[name]``, ``body()``), so it does
not import :mod:`lamson.mail`.

Lamson 1.x's ``BounceAnalyzer`` names are all here (``probable``,
``primary_status``/``secondary_status``/``combined_status`` as ``(code,
text)``, ``diagnostic_codes``, ``notification``/``report``/``original``,
``is_hard``/``is_soft``/``error_for_humans``), so 1.x bounce handlers run
unchanged; ``BounceAnalyzer`` is an alias of :class:`BounceAnalysis`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32 as compat32_policy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamson.mail import MailRequest

__all__ = [
    "BounceAnalysis",
    "BounceAnalyzer",
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


#: Lamson 1.x's tables (``bounce.PRIMARY_STATUS_CODES['5']``), keyed by the code's digits as text and
#: worded as 1.x worded them (title case: "Permanent Failure"), so a 1.x handler that compares or shows
#: ``primary_status[1]`` reads what it always did. :func:`status_meaning` keeps RFC 3463's own wording.
PRIMARY_STATUS_CODES = {
    "1": "Unknown Status Code 1",
    "2": "Success",
    "3": "Temporary Failure",
    "4": "Persistent Transient Failure",
    "5": "Permanent Failure",
}
#: The subject (middle number) of a status code, 1.x's wording.
SECONDARY_STATUS_CODES = {
    "0": "Other or Undefined Status",
    "1": "Addressing Status",
    "2": "Mailbox Status",
    "3": "Mail System Status",
    "4": "Network and Routing Status",
    "5": "Mail Delivery Protocol Status",
    "6": "Message Content or Media Status",
    "7": "Security or Policy Status",
}
#: Subject and detail written together (``5.1.1`` → ``"11"``), RFC 3463's detail texts.
COMBINED_STATUS_CODES = {"00": "Not Applicable", **{k.replace(".", ""): v for k, v in DETAILS.items()
                                                    if k != "0.0"}}

#: The delivery report fields 1.x collected into ``headers`` (its names, as it normalised them).
BOUNCE_MATCHERS = ("Action", "Content-Description", "Diagnostic-Code", "Final-Recipient", "Received",
                   "Remote-Mta", "Reporting-Mta", "Status")


class Pair(tuple[Any, Any]):
    """A ``(value, text)`` pair that also equals the list ``[value, text]``.

    Lamson 1.x gave some of these as tuples (``primary_status == (None, None)``)
    and others as lists (``diagnostic_codes == [None, None]``); applications and
    their tests compare with either spelling, so both must hold.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            return list(self) == other
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__


#: What a status code means when there is none: Lamson 1.x's ``(None, None)``.
NO_STATUS: tuple[None, None] = Pair((None, None))


def _pair(value: Any, text: Any) -> tuple[Any, Any]:
    return Pair((value, text))


@dataclass
class BounceAnalysis:
    """What a delivery report says. ``score`` is 0..1: how bounce-like the message is.

    ``notification`` is the human-readable part and ``report_part`` the
    ``message/delivery-status`` part (:class:`email.message.Message`, None
    when absent). As in Lamson 1.x, ``report`` is the list of that part's
    field blocks (one per message, then one per recipient), ``original`` the
    returned message as a :class:`~lamson.mail.MailRequest` (``.body()``,
    ``['to']``; only headers when the reporter returned only those), and
    ``headers`` every delivery-report field found, by name, as lists of values.
    """

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
    headers: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)
    notification: Message | None = field(default=None, repr=False, compare=False)
    report: list[Message] | None = field(default=None, repr=False, compare=False)
    original: Any = field(default=None, repr=False, compare=False)
    report_part: Message | None = field(default=None, repr=False, compare=False)
    original_part: Message | None = field(default=None, repr=False, compare=False)
    # Values a 1.x handler assigned to primary_status & co. (they were plain attributes there).
    _set: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def meaning(self) -> str:
        """E.g. ``"Permanent failure: Bad destination mailbox address"``."""
        return status_meaning(self.status)

    @property
    def status_code(self) -> tuple[int, int, int] | None:
        """The enhanced status as numbers, ``"5.1.1"`` → ``(5, 1, 1)``; None without one."""
        if not self.status:
            return None
        a, b, c = (int(x) for x in self.status.split("."))
        return a, b, c

    @property
    def primary_status(self) -> tuple[int, str] | tuple[None, None]:
        """The status class and 1.x's text for it: ``(5, "Permanent Failure")``, or ``(None, None)``.

        Settable, as the 1.x attribute was; :meth:`is_hard`/:meth:`is_soft` read it.
        """
        if "primary_status" in self._set:
            return _pair(*self._set["primary_status"])
        code = self.status_code
        if code is None:
            return NO_STATUS
        return _pair(code[0], PRIMARY_STATUS_CODES.get(str(code[0]), "Unknown Status Code"))

    @primary_status.setter
    def primary_status(self, value: tuple[Any, Any]) -> None:
        self._set["primary_status"] = value

    @property
    def secondary_status(self) -> tuple[int, str] | tuple[None, None]:
        """The status subject and 1.x's text: ``(1, "Addressing Status")``, or ``(None, None)``; settable."""
        if "secondary_status" in self._set:
            return _pair(*self._set["secondary_status"])
        code = self.status_code
        if code is None:
            return NO_STATUS
        return _pair(code[1], SECONDARY_STATUS_CODES.get(str(code[1]), "Unknown Status"))

    @secondary_status.setter
    def secondary_status(self, value: tuple[Any, Any]) -> None:
        self._set["secondary_status"] = value

    @property
    def combined_status(self) -> tuple[int, str] | tuple[None, None]:
        """Subject and detail together, as 1.x numbered them: ``5.1.1`` → ``(11, "Bad destination mailbox address")``.

        A detail with no name of its own gets its subject's text. Settable.
        """
        if "combined_status" in self._set:
            return _pair(*self._set["combined_status"])
        code = self.status_code
        if code is None:
            return NO_STATUS
        key = f"{code[1]}{code[2]}"
        text = COMBINED_STATUS_CODES.get(key) or SECONDARY_STATUS_CODES.get(str(code[1]), "Unknown Status")
        return _pair(int(key), text)

    @combined_status.setter
    def combined_status(self, value: tuple[Any, Any]) -> None:
        self._set["combined_status"] = value

    @property
    def diagnostic_codes(self) -> tuple[str, str] | tuple[str | None, str | None]:
        """The remote server's answer split as 1.x did: ``("550", "5.1.1 <x@y>: User unknown")``.

        The first item is the leading reply code (None if the text starts
        with none), the second the rest; ``(None, None)`` (equal to 1.x's
        ``[None, None]`` too) without a Diagnostic-Code.
        """
        if not self.diagnostic_code:
            return NO_STATUS
        found = re.match(r"\s*([0-9][0-9.\-]*)\s*(.*)", self.diagnostic_code, re.DOTALL)
        if not found:
            return _pair(None, self.diagnostic_code)
        return _pair(found.group(1), found.group(2))

    @property
    def content_parts(self) -> dict[str, Any]:
        """The report's parts by role, as 1.x named them: ``notification``, ``report``, ``original``."""
        return {"notification": self.notification, "report": self.report, "original": self.original}

    def probable(self, threshold: float = 0.3) -> bool:
        """True when the message is probably a bounce: its score reaches ``threshold``.

        The same test as ``MailRequest.is_bounce(threshold)``.
        """
        return self.score >= threshold

    def is_hard(self) -> bool:
        """A probable bounce whose primary status is a permanent failure (5), as in 1.x."""
        code = self.primary_status[0]
        return self.probable() and code is not None and code > 4

    def is_soft(self) -> bool:
        """A probable bounce that is not hard, as in 1.x: status 4 (or lower), or no status at all.

        A bounce with no status code is soft: uncertain evidence should not
        trigger what a hard bounce does (unsubscribing someone), and 1.x
        decided the same.
        """
        code = self.primary_status[0]
        return self.probable() and (code is None or code <= 4)

    def error_for_humans(self) -> str:
        """One line for a log or a list owner: the status texts, recipient and server answer.

        Without a status code it says so in 1.x's words.
        """
        primary, secondary, combined = self.primary_status, self.secondary_status, self.combined_status
        if primary[0] is None:
            return "No status codes found in bounce message."
        parts = [", ".join(str(text) for text in (primary[1], secondary[1], combined[1]) if text)]
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


def _read_parts(message: Message, found: BounceAnalysis) -> None:
    """Find the notification, report and original parts (RFC 3464 order, or by type)."""
    if message.get_content_type() == "multipart/report":
        payload = message.get_payload()
        parts = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
        if parts and parts[0].get_content_maintype() in ("text", "multipart"):
            found.notification = parts[0]
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status" and found.report_part is None:
            found.report_part = part
            found.report = _status_parts(message)
        elif kind in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers") and found.original_part is None:
            found.original_part = part
            found.original = _returned_message(part)
    if found.notification is None and found.score > 0:
        # A non-standard bounce: its text is the notification.
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                found.notification = part
                break
    if found.score > 0:
        found.headers = _report_fields(message)


def _returned_message(part: Message) -> Any:
    """The returned message of a report part as a :class:`~lamson.mail.MailRequest` (1.x's ``original``).

    ``message/rfc822`` holds the whole message; ``text/rfc822-headers`` only
    its header block, which reads as a message with an empty body.
    """
    from lamson.mail import MailRequest  # lamson.mail imports this module

    payload = part.get_payload()
    if isinstance(payload, list):
        inner = next((p for p in payload if isinstance(p, Message)), None)
        if inner is None:
            return None
        data = inner.as_bytes(policy=compat32_policy)
    else:
        raw = part.get_payload(decode=True)
        data = raw if isinstance(raw, bytes) else str(payload).encode("utf-8", "surrogateescape")
        if not data.endswith(b"\n\n") and not data.endswith(b"\r\n\r\n"):
            data += b"\n"
    return MailRequest(None, None, None, data)


def _report_fields(message: Message) -> dict[str, list[str]]:
    """Every delivery-report field (:data:`BOUNCE_MATCHERS`) in any part, by 1.x's name: 1.x's ``headers``."""
    wanted = {name.lower(): name for name in BOUNCE_MATCHERS}
    found: dict[str, list[str]] = {}
    blocks = [p for p in message.walk()] + _status_parts(message)
    seen: set[int] = set()
    for block in blocks:
        if id(block) in seen:
            continue
        seen.add(id(block))
        for name, value in block.items():
            key = wanted.get(name.lower())
            if key is not None:
                found.setdefault(key, []).append(" ".join(str(value).split()))
    return found


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


#: Without one of these in its bytes a message has neither a delivery report part nor the report type.
_REPORT_MARKS = re.compile(rb"delivery-status|multipart/report", re.IGNORECASE)


def surely_not_a_bounce(message: Any) -> bool:
    """True when :func:`detect` would score ``message`` 0, found from its headers and a byte scan.

    Every point :func:`detect` gives comes from a report part or type, a null
    sender, a mailer-daemon From, a bounce-like Subject or X-Failed-Recipients
    (the body is only read once one of those scored). Checking those directly
    spares the full analysis, which parses every part under the modern policy
    and hands the parsed message out, for the mail that is plainly not a
    bounce: the common case for every ``auto_reply_allowed``. The bytes
    scanned are ``message.Data``, so it answers for a message as received:
    ``MailRequest.is_bounce`` asks it only while nothing was edited or handed out.
    """
    data = getattr(message, "Data", None)
    if not isinstance(data, bytes) or _REPORT_MARKS.search(data):
        return False
    if getattr(message, "From", None) == "" or (message["Return-Path"] or "").strip() == "<>":
        return False
    if _DAEMONS.search(message["From"] or "") or _SUBJECTS.search(message["Subject"] or ""):
        return False
    return not message["X-Failed-Recipients"]


def detect(message: MailRequest) -> BounceAnalysis:
    """Analyse a :class:`~lamson.mail.MailRequest`; the result is cached on it."""
    cached = getattr(message, "_bounce_analysis", None)
    if isinstance(cached, BounceAnalysis):
        return cached
    try:
        found = _detect(message)
    except Exception as exc:  # noqa: BLE001 - analysis of odd mail must not break a handler
        found = BounceAnalysis(reasons=[f"analysis failed: {type(exc).__name__}"])
    try:
        message._bounce_analysis = found  # type: ignore[attr-defined]  # a cache on the caller's object
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
    _read_parts(parsed, found)
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


def bounce_to(soft: Callable[..., Any] | None = None, hard: Callable[..., Any] | None = None
              ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Send bounces to other states: ``@bounce_to(soft=SOFT_BOUNCE, hard=HARD_BOUNCE)``.

    Put it under the state's ``@route``. A hard bounce calls
    ``hard(message)`` and a soft one ``soft(message)`` (only the message: a
    bounce handler routed on ``".+"`` has no captures to receive, as in
    Lamson 1.x) instead of the decorated state, and what they return is the
    next state. A bounce that says neither (no status, no action) counts as
    soft: uncertain evidence should not trigger what a hard bounce does
    (unsubscribing someone), and it is where 1.x sent it too. A bounce with
    no handler for its kind, or a message that is not a bounce, goes to the
    decorated state as usual.
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(message: Any, *args: Any, **kwargs: Any) -> Any:
            if message.is_bounce():
                report = detect(message)
                if report.is_hard():
                    if hard is not None:
                        return hard(message)
                elif soft is not None:
                    return soft(message)
            return func(message, *args, **kwargs)

        return wrapper

    return decorator


_LIST_HEADERS = ("List-Id", "List-Post", "List-Unsubscribe")
_SUPPRESS = {"all", "autoreply", "oof"}


def auto_reply_refusal(message: MailRequest) -> str | None:
    """Why an automatic reply to ``message`` must not be sent (RFC 3834), or None.

    Refused: bounces; the null sender (envelope ``<>``, or a ``Return-Path:
    <>`` header); any ``Auto-Submitted`` header other than ``no`` (every one
    is read, comments removed); any ``Precedence: bulk/list/junk`` (every one,
    comments removed, any case); mailing-list mail (``List-Id``,
    ``List-Post``, ``List-Unsubscribe``); Microsoft's ``X-Auto-Response-Suppress``
    naming All, AutoReply or OOF; other autoresponders' ``X-Autoreply`` /
    ``X-Autorespond``; and senders named ``MAILER-DAEMON``, ``owner-*`` or
    ``*-request`` (RFC 3834 section 2).

    Values are read as a robot would mean them, not as the grammar allows
    only: comments removed, quotes taken off (``Precedence: "bulk"``), case
    folded. Header names are matched with white space before the colon too
    (``Auto-Submitted : auto-replied``, the obsolete syntax of RFC 5322 §4.5):
    the parser ends the header block at such a line, so the received header
    block is read as well (:func:`_raw_fields`). Reading too much here only
    costs a reply; reading too little starts a loop with another robot.
    """
    sender = getattr(message, "From", None)
    if sender == "":
        return "null envelope sender <>"
    # Return-Path is written by the delivering MTA; whoever wrote "<>" meant
    # "do not answer", and honouring a forged one only suppresses a reply.
    raw = _raw_fields(message)
    if any(_unquoted(v) == "<>" for v in _all(message, "Return-Path", raw)):
        return "null Return-Path <>"
    for value in _all(message, "Auto-Submitted", raw):
        auto = _unquoted(strip_comments(value).split(";")[0])
        if auto != "no":  # RFC 3834 §5: anything but "no" is automatic (an empty or odd value too)
            return f"Auto-Submitted: {auto or '(empty)'}"
    for value in _all(message, "Precedence", raw):
        words = set(_unquoted(value).replace(",", " ").split())
        found = sorted(words & _BULK)
        if found:
            return f"Precedence: {found[0]}"
    for name in _LIST_HEADERS:
        if name in message or name.lower() in raw:
            return f"mailing list mail ({name})"
    suppress = {_unquoted(v) for value in _all(message, "X-Auto-Response-Suppress", raw) for v in value.split(",")}
    if suppress & _SUPPRESS:
        return "X-Auto-Response-Suppress"
    for name in ("X-Autoreply", "X-Autorespond"):
        if name in message or name.lower() in raw:
            return f"sent by an autoresponder ({name})"
    local = (sender or _header_address(message["From"])).partition("@")[0].lower()
    if local == "mailer-daemon" or local.startswith("owner-") or local.endswith("-request"):
        return f"sender {local!r} is a mail system or list address"
    if message.is_bounce():
        return "message is a bounce"
    return None


#: Precedence values that mean "no automatic answer" (RFC 3834 §3.1.8; ``auto_reply`` is what some
#: autoresponders write on their own answers).
_BULK = frozenset({"bulk", "list", "junk", "auto_reply"})
#: Header names the raw header block is read for (lowercased).
_SCREENED = frozenset({"return-path", "auto-submitted", "precedence", "x-auto-response-suppress",
                       "x-autoreply", "x-autorespond", *(name.lower() for name in _LIST_HEADERS)})
#: A header field's first line: its name, optional white space, the colon (RFC 5322 §4.5's obs-optional).
_FIELD = re.compile(r"([!-9;-~]+)[ \t]*:(.*)", re.DOTALL)


def _raw_fields(message: Any) -> dict[str, list[str]]:
    """The screened header fields of the received header block, by lowercased name, unfolded.

    The email parser stops reading headers at a line like ``Auto-Submitted :
    auto-replied`` (white space before the colon) and takes the rest for the
    body, so what it reports can miss the very header that says "do not
    answer". The raw block (up to the first empty line) is read here, names
    matched with white space before the colon allowed.
    """
    from lamson.encoding import MAX_HEADER_BYTES, decode_header_text, header_block_end

    data = getattr(message, "original", None)
    if not isinstance(data, bytes):
        data = getattr(message, "Data", None)
    if not isinstance(data, bytes):
        return {}
    end = header_block_end(data)
    head = data[:MAX_HEADER_BYTES if end is None else end].decode("utf-8", "surrogateescape")
    fields: list[tuple[str, list[str]]] = []
    for line in head.splitlines():
        if line[:1] in (" ", "\t"):
            if fields:
                fields[-1][1].append(line)
            continue
        match = _FIELD.match(line)
        fields.append((match.group(1).lower(), [match.group(2)]) if match else ("", []))
    found: dict[str, list[str]] = {}
    for name, lines in fields:
        if name in _SCREENED:
            found.setdefault(name, []).append(decode_header_text(" ".join(lines)))
    return found


def _unquoted(value: str) -> str:
    """A header value compared as a word: comments removed, quotes and quoted pairs taken off, case folded."""
    text = strip_comments(value)
    text = re.sub(r'\\(.)', r"\1", text.replace('"', ""))
    return " ".join(text.split()).casefold()


def _all(message: Any, name: str, raw: dict[str, list[str]] | None = None) -> list[str]:
    """Every value of header ``name`` (a message may carry several), as text; with ``raw``
    (:func:`_raw_fields`), the received header block's values of it as well."""
    get_all = getattr(message, "get_all", None)
    values = get_all(name) if callable(get_all) else None
    if values is None:
        one = message[name]
        values = [] if one is None else [one]
    return [str(v) for v in values] + list((raw or {}).get(name.lower(), []))


def strip_comments(value: str) -> str:
    """A structured header value without its RFC 5322 comments: ``BULK (x)`` → ``BULK``.

    Comments nest and may hold quoted pairs; text inside quoted strings is
    left alone. An unclosed comment runs to the end of the value.
    """
    out: list[str] = []
    depth = 0
    quoted = False
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            if depth == 0:
                out.append(ch + nxt)
            continue
        if quoted:
            out.append(ch)
            quoted = ch != '"'
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
            quoted = ch == '"'
    return " ".join("".join(out).split())


def auto_reply_allowed(message: MailRequest) -> bool:
    """True when an automatic reply is allowed (see :func:`auto_reply_refusal`)."""
    return auto_reply_refusal(message) is None


def _header_address(value: str | None) -> str:
    import email.utils

    text = strip_comments(value or "")  # comments say nothing of the address; parseaddr recurses on them
    try:
        return email.utils.parseaddr(text)[1]
    except Exception:  # noqa: BLE001 - an unreadable From names no mail system
        return ""


#: Lamson 1.x's name for the analysis ``detect`` returns.
BounceAnalyzer = BounceAnalysis
