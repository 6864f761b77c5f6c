"""The SMTP client side shared by ``send``, ``sendmail`` and ``blast``.

smtplib does the protocol; this module turns its many exceptions into one
line a user can act on, and puts a message read from a mail client or a file
into the CRLF form SMTP requires (smtplib sends bytes exactly as given).
"""

from __future__ import annotations

import re
import smtplib
import socket

from lamson.cli.framework import CommandError

_BARE_LF = re.compile(rb"(?<!\r)\n")


def to_crlf(data: bytes) -> bytes:
    """Bytes with every bare LF made CRLF (mail clients and files use LF)."""
    return _BARE_LF.sub(b"\r\n", data)


def strip_mbox_separator(data: bytes) -> bytes:
    """Drop a leading mbox ``From `` line, which is not part of the message."""
    if data.startswith(b"From "):
        _, _, rest = data.partition(b"\n")
        return rest
    return data


def connect(host: str, port: int, debug: int = 0, timeout: float = 60.0) -> smtplib.SMTP:
    """An SMTP connection that has said EHLO (or HELO), or a one-line CommandError."""
    try:
        client = smtplib.SMTP(timeout=timeout)
        client.set_debuglevel(debug)
        client.connect(host, port)
        client.ehlo_or_helo_if_needed()
    except (OSError, smtplib.SMTPException) as exc:
        raise CommandError(f"cannot talk SMTP to {host}:{port}: {describe(exc)}") from None
    return client


def send(client: smtplib.SMTP, sender: str, recipients: list[str], data: bytes) -> dict[str, tuple[int, bytes]]:
    """Send one message; return the recipients the server refused (as smtplib does).

    8BITMIME is declared when the message needs it and the server offers it.
    """
    options: list[str] = []
    if any(byte > 127 for byte in data) and client.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    try:
        return client.sendmail(sender, recipients, to_crlf(data), mail_options=options)
    except smtplib.SMTPRecipientsRefused as exc:
        refused = "; ".join(f"{rcpt}: {code} {text.decode(errors='replace')}"
                            for rcpt, (code, text) in exc.recipients.items())
        raise CommandError(f"every recipient was refused: {refused}") from None
    except smtplib.SMTPSenderRefused as exc:
        raise CommandError(f"sender {exc.sender} refused: {exc.smtp_code} "
                           f"{exc.smtp_error.decode(errors='replace')}") from None
    except smtplib.SMTPResponseException as exc:
        raise CommandError(f"server answered {exc.smtp_code} "
                           f"{exc.smtp_error.decode(errors='replace') if isinstance(exc.smtp_error, bytes) else exc.smtp_error}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise CommandError(f"sending failed: {describe(exc)}") from None


def close(client: smtplib.SMTP) -> None:
    """QUIT politely; a server that already hung up is not an error."""
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


def describe(exc: BaseException) -> str:
    """A short, single-line reason for a network or SMTP failure."""
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


def deliver(host: str, port: int, sender: str, recipients: list[str], data: bytes, debug: int = 0) -> None:
    """Connect, send one message, quit. Refused recipients are reported as an error."""
    client = connect(host, port, debug)
    try:
        refused = send(client, sender, recipients, data)
    finally:
        close(client)
    if refused:
        listing = "; ".join(f"{rcpt}: {code}" for rcpt, (code, _text) in refused.items())
        raise CommandError(f"some recipients were refused: {listing}")
