"""Delivery status notifications (RFC 3464): telling a sender their mail did not arrive.

The relay worker builds one when the smart host refuses a message for good
(5xx) or when temporary failures outlast ``relay_lifetime``. It is a
``multipart/report; report-type=delivery-status`` message: a human-readable
explanation, the machine-readable ``message/delivery-status`` part (one block
per failed recipient), and the original message's headers. It is sent from
the null sender ``<>`` so that it can never cause a notification in turn
(RFC 5321 section 4.5.5); mail whose sender was ``<>`` never gets one.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, localtime, make_msgid

#: Where the human part and the Message-ID say the notification comes from.
MAILER_DAEMON = "MAILER-DAEMON"


@dataclass(frozen=True)
class Failure:
    """One recipient the relay gave up on, with the reply that decided it."""

    recipient: str
    code: int  # SMTP reply code, or 0 when no server answered (connection refused, timeout)
    text: str  # the server's reply text, or what went wrong

    @property
    def status(self) -> str:
        """RFC 3463 status: the server's enhanced code when it gave one, else derived from the reply code."""
        first = self.text.split(" ", 1)[0]
        parts = first.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and parts[0] in ("4", "5"):
            return first
        if 500 <= self.code < 600:
            return "5.0.0"
        return "4.4.7" if self.code == 0 else "4.0.0"  # 4.4.7: delivery time expired


def _clean(text: str, limit: int = 500) -> str:
    """One line of printable text: a server's reply must not add header lines to the report."""
    return "".join(ch if ch.isprintable() else " " for ch in text)[:limit].strip()


def build(original: bytes, sender: str, failures: list[Failure], *, remote: str, expired: bool = False,
          reporting_host: str | None = None, arrived: float | None = None) -> EmailMessage:
    """The notification to ``sender`` about ``failures`` of ``original`` (never call it for ``<>``)."""
    if not sender:
        raise ValueError("no delivery status notification for mail from the null sender <>")
    host = reporting_host or socket.getfqdn()
    report = EmailMessage(policy=SMTP_POLICY)
    report["From"] = f"Mail Delivery System <{MAILER_DAEMON}@{host}>"
    report["To"] = sender
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = format_datetime(localtime())
    report["Message-ID"] = make_msgid(domain=host)
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834: no auto-reply to this
    headers = BytesHeaderParser(policy=SMTP_POLICY).parsebytes(original)
    if headers.get("Message-ID"):
        report["In-Reply-To"] = _clean(str(headers["Message-ID"]), 900)
        report["References"] = report["In-Reply-To"]

    why = ("could not be delivered in the time allowed: the receiving server kept answering "
           "'try again later' or could not be reached" if expired else
           "was refused by the receiving server")
    lines = [f"This is the mail system at {host}.", "",
             f"Your message {why}.", "It has not been delivered to:", ""]
    lines += [f"    <{f.recipient}>: {f.code or 'no answer'} {_clean(f.text)}" for f in failures]
    lines += ["", "The message's headers are attached below."]
    report.set_content("\n".join(lines) + "\n")
    report.make_mixed()
    report.replace_header("Content-Type", "multipart/report")
    report.set_param("report-type", "delivery-status")

    status = EmailMessage(policy=SMTP_POLICY)
    status["Content-Type"] = "message/delivery-status"
    per_message = Message(policy=SMTP_POLICY)
    per_message["Reporting-MTA"] = f"dns; {host}"
    if arrived is not None:
        per_message["Arrival-Date"] = format_datetime(datetime.fromtimestamp(arrived, UTC))
    blocks: list[Message | str] = [per_message]
    for failure in failures:
        block = Message(policy=SMTP_POLICY)
        block["Final-Recipient"] = f"rfc822; {failure.recipient}"
        block["Action"] = "failed"
        block["Status"] = failure.status
        block["Remote-MTA"] = f"dns; {_clean(remote, 200)}"
        if failure.code:
            block["Diagnostic-Code"] = f"smtp; {failure.code} {_clean(failure.text)}"
        else:
            block["Diagnostic-Code"] = f"X-Lamson; {_clean(failure.text)}"
        blocks.append(block)
    status.set_payload(blocks)
    report.attach(status)

    returned = EmailMessage(policy=SMTP_POLICY)
    head = original.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    returned.set_content(head.decode("ascii", "replace").replace("\r\n", "\n") + "\n", subtype="rfc822-headers")
    del returned["MIME-Version"]
    report.attach(returned)
    return report
