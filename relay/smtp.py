"""SMTP delivery to the smart host or an MX: one kept-open session per destination and security.

Opening an SMTP session costs several round trips (more with TLS and AUTH);
the relay worker runs jobs one after another in one process, so it reuses the
session between jobs and reconnects once when the server has dropped it.

A session is opened as its :class:`Security` says: implicit TLS
(``smtplib.SMTP_SSL``), STARTTLS (required, or opportunistic: used when
offered), AUTH (``smtplib``'s login), LMTP (``smtplib.LMTP``, one reply per
recipient after DATA). Failures of these steps raise :class:`SessionError`
naming the cause ("TLS handshake", "certificate", "authentication refused",
"STARTTLS not offered"); its text never contains the password.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from lamson.encoding import PLAIN_ADDRESS

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


class SessionError(smtplib.SMTPException):
    """Opening a session failed for a named cause: "TLS handshake", "certificate",
    "authentication refused", "STARTTLS not offered" (never carries the password).

    ``code`` is the server's reply code when it gave one (535 for refused credentials), else 0.
    """

    def __init__(self, cause: str, host: str, port: int, detail: str, code: int = 0) -> None:
        super().__init__(f"{cause} with {host}:{port}: {detail}")
        self.cause = cause
        self.code = code


def tls_context(security: Security) -> ssl.SSLContext:
    """Verified against the system's CAs (and ``ca_file``), unless ``verify`` is False."""
    context = ssl.create_default_context(cafile=security.ca_file)
    if not security.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Dialing:
    """Connects to ``address`` (an IP found by MX lookup) while the name stays ``host`` (TLS checks it).

    ``mail``/``rcpt`` write a plain address's path themselves: smtplib runs every address through
    ``email.utils.parseaddr`` first, which was a seventh of the relay's CPU and changes nothing
    for such an address. Anything else (and SMTPUTF8) goes through smtplib as before.
    """

    address: str | None = None

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # A mixin: mypy cannot see smtplib.SMTP behind super() (misc); smtplib returns a socket.
        return cast(socket.socket, super()._get_socket(self.address or host, port, timeout))  # type: ignore[misc]

    def _path_command(self, verb: str, prefix: str, address: str, options: Sequence[str]) -> tuple[int, bytes]:
        extra = " " + " ".join(options) if options and self.does_esmtp else ""  # type: ignore[attr-defined]
        self.putcmd(verb, f"{prefix}<{address}>{extra}")  # type: ignore[attr-defined]
        reply: tuple[int, bytes] = self.getreply()  # type: ignore[attr-defined]
        return reply

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if PLAIN_ADDRESS.fullmatch(sender) and not any(o.lower() == "smtputf8" for o in options):
            return self._path_command("mail", "from:", sender, options)
        result: tuple[int, bytes] = super().mail(sender, options)  # type: ignore[misc]
        return result

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if PLAIN_ADDRESS.fullmatch(recip):
            return self._path_command("rcpt", "to:", recip, options)
        result: tuple[int, bytes] = super().rcpt(recip, options)  # type: ignore[misc]
        return result


class _SMTP(_Dialing, smtplib.SMTP):
    pass


class _SMTP_SSL(_Dialing, smtplib.SMTP_SSL):
    pass


class _LMTP(_Dialing, smtplib.LMTP):
    pass


Key = tuple[str, int, str | None, Security]


class Connections:
    """Kept-open SMTP sessions, keyed by destination (host, port, address) and security."""

    def __init__(self, timeout: float = 30.0, local_hostname: str | None = None) -> None:
        self.timeout = timeout
        self.local_hostname = local_hostname or socket.gethostname()
        self._open: dict[Key, tuple[smtplib.SMTP, float]] = {}
        self.resolver: Any = None  # delivery by MX: the DNS resolver, kept with its cache (lamson.relay.mx)

    def _connect(self, host: str, port: int, security: Security = PLAIN, address: str | None = None,
                 tls: bool = True) -> smtplib.SMTP:
        """A session as ``security`` says; ``tls=False``: opportunistic STARTTLS skipped (its fallback)."""
        smtp: smtplib.SMTP
        context = tls_context(security) if security.ssl or security.starttls != "no" else None
        try:
            if security.ssl:
                if security.lmtp:
                    raise SessionError("configuration", host, port,
                                       "LMTP over implicit TLS is not supported: use starttls with lmtp")
                smtp = _SMTP_SSL(local_hostname=self.local_hostname, timeout=self.timeout, context=context)
            elif security.lmtp:
                smtp = _LMTP(local_hostname=self.local_hostname, timeout=self.timeout)
            else:
                smtp = _SMTP(local_hostname=self.local_hostname, timeout=self.timeout)
            smtp.address = address
            setattr(smtp, "_host", host)  # noqa: B010 - the name TLS checks (smtplib sets it only when given to the constructor)
            smtp.connect(host, port)
        except ssl.SSLCertVerificationError as exc:
            raise SessionError("certificate", host, port, f"not trusted: {exc.verify_message}") from None
        except ssl.SSLError as exc:
            raise SessionError("TLS handshake", host, port, str(exc)) from None
        try:
            smtp.ehlo_or_helo_if_needed()
            if not security.ssl and security.starttls != "no" and tls:
                self._starttls(smtp, host, port, security, context)
            if security.username:
                self._login(smtp, host, port, security)
        except BaseException:
            smtp.close()
            raise
        return smtp

    @staticmethod
    def _starttls(smtp: smtplib.SMTP, host: str, port: int, security: Security, context: ssl.SSLContext | None) -> None:
        if not smtp.has_extn("starttls"):
            if security.starttls == "required":
                raise SessionError("STARTTLS not offered", host, port,
                                   "the server does not offer STARTTLS and starttls is 'required': not sending "
                                   "in the clear")
            return  # opportunistic: plain
        try:
            smtp.starttls(context=context)
        except ssl.SSLCertVerificationError as exc:
            raise SessionError("certificate", host, port, f"not trusted: {exc.verify_message}") from None
        except ssl.SSLError as exc:
            raise SessionError("TLS handshake", host, port, str(exc)) from None
        except smtplib.SMTPResponseException as exc:
            raise SessionError("TLS handshake", host, port, f"STARTTLS refused: {exc.smtp_code} "
                               f"{exc.smtp_error!r}", exc.smtp_code) from None
        smtp.ehlo()

    @staticmethod
    def _login(smtp: smtplib.SMTP, host: str, port: int, security: Security) -> None:
        if not isinstance(smtp.sock, ssl.SSLSocket):
            log.warning("sending the password for %s to %s:%s without TLS (set ssl or starttls)",
                        security.username, host, port)
        try:
            smtp.login(security.username or "", security.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
                else str(exc.smtp_error)
            raise SessionError("authentication refused", host, port,
                               f"user {security.username!r}: {exc.smtp_code} {reply}", exc.smtp_code) from None
        except smtplib.SMTPNotSupportedError:
            raise SessionError("authentication refused", host, port,
                               f"the server does not offer AUTH (user {security.username!r})") from None

    def _open_session(self, host: str, port: int, security: Security, address: str | None) -> smtplib.SMTP:
        try:
            return self._connect(host, port, security, address)
        except SessionError as exc:
            if security.starttls != "opportunistic" or exc.cause not in ("TLS handshake", "certificate"):
                raise
            # RFC 7435: opportunistic security falls back to the clear rather than not delivering.
            log.warning("%s; opportunistic STARTTLS: sending to %s:%s without TLS", exc, host, port)
            return self._connect(host, port, security, address, tls=False)

    def get(self, host: str, port: int, security: Security = PLAIN,
            address: str | None = None) -> tuple[smtplib.SMTP, bool]:
        """A session and whether it was reused (a reused one may turn out dead)."""
        entry = self._open.pop((host, port, address, security), None)
        if entry is not None:
            smtp, last_used = entry
            if time.monotonic() - last_used < MAX_IDLE:
                return smtp, True
            self._quit(smtp)
        return self._open_session(host, port, security, address), False

    def put(self, host: str, port: int, smtp: smtplib.SMTP, security: Security = PLAIN,
            address: str | None = None) -> None:
        self._open[(host, port, address, security)] = (smtp, time.monotonic())

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

    def send(self, host: str, port: int, mail_from: str, rcpt_tos: list[str], data: bytes,
             security: Security = PLAIN, address: str | None = None) -> dict[str, tuple[int, bytes]]:
        """One SMTP (or LMTP) transaction; returns the refused recipients (as smtplib does).

        A session that was reused and turns out closed is replaced once; any
        error leaves no session behind, so the next job starts clean.
        """
        for attempt in (1, 2):
            smtp, reused = self.get(host, port, security, address)
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
                if security.lmtp:
                    refused = lmtp_sendmail(smtp, mail_from, rcpt_tos, data, options)
                else:
                    refused = smtp.sendmail(mail_from, rcpt_tos, data, mail_options=options)
            except (smtplib.SMTPServerDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.discard(smtp)
                if reused and attempt == 1:
                    log.info("kept-open session to %s:%s was closed (%s); reconnecting", host, port, exc)
                    continue
                raise
            except smtplib.SMTPRecipientsRefused:
                self.put(host, port, smtp, security, address)  # smtplib already sent RSET
                raise
            except smtplib.SMTPResponseException:
                # The transaction was refused but the session is sound: reset it and keep it.
                try:
                    smtp.rset()
                    self.put(host, port, smtp, security, address)
                except (smtplib.SMTPException, OSError):
                    self.discard(smtp)
                raise
            except (smtplib.SMTPException, OSError):
                self.discard(smtp)
                raise
            self.put(host, port, smtp, security, address)
            return refused
        raise AssertionError("unreachable")


def lmtp_sendmail(smtp: smtplib.SMTP, mail_from: str, rcpt_tos: list[str], data: bytes,
                  options: list[str]) -> dict[str, tuple[int, bytes]]:
    """An LMTP transaction (RFC 2033): after DATA, one reply per accepted recipient, each its own verdict.

    smtplib's sendmail reads only the first of them, which would leave the others
    in the kept-open session; this reads them all and reports the refused ones.
    """
    code, reply = smtp.mail(mail_from, options)
    if code != 250:
        smtp.rset()
        raise smtplib.SMTPSenderRefused(code, reply, mail_from)
    refused: dict[str, tuple[int, bytes]] = {}
    accepted = []
    for rcpt in rcpt_tos:
        code, reply = smtp.rcpt(rcpt)
        if code in (250, 251):
            accepted.append(rcpt)
        else:
            refused[rcpt] = (code, reply)
    if not accepted:
        smtp.rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    code, reply = smtp.data(data)
    replies = [(code, reply)] + [smtp.getreply() for _ in accepted[1:]]
    for rcpt, (code, reply) in zip(accepted, replies, strict=True):
        if code != 250:
            refused[rcpt] = (code, reply)
    return refused


def headers_ascii(data: bytes) -> bool:
    """True when the header block is ASCII (UTF-8 headers, RFC 6532, need SMTPUTF8)."""
    end = data.find(b"\r\n\r\n")
    return (data if end < 0 else data[:end]).isascii()


def needs_smtputf8(mail_from: str, rcpt_tos: list[str]) -> bool:
    return not all(addr.isascii() for addr in [mail_from, *rcpt_tos])


def starttls_mode(value: object) -> str:
    """``relay_config["starttls"]``: True or "required", "opportunistic", False/None/"no"."""
    if value is True or value == "required":
        return "required"
    if value == "opportunistic":
        return "opportunistic"
    if value in (False, None, "no", ""):
        return "no"
    raise ValueError(f"starttls must be 'required', 'opportunistic' or False, not {value!r}")


def _flag(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true", "yes"))


def smarthost_security(config: dict[str, Any], extra: dict[str, str], host: str, port: int) -> Security:
    """How to talk to the smart host ``host``:``port`` of an outbox record.

    TLS and LMTP flags: the record's (``relay_ssl``, ``relay_starttls``, ``relay_lmtp``, written
    by ``Relay``) when it has them, else ``relay_config``'s. Verification and credentials come
    only from ``relay_config``, and credentials only for the smart host it names: a record
    naming another server never gets them.
    """
    ssl_on = _flag(extra["relay_ssl"]) if "relay_ssl" in extra else bool(config.get("ssl"))
    try:
        starttls = starttls_mode(extra["relay_starttls"] if "relay_starttls" in extra else config.get("starttls"))
    except ValueError as exc:  # a misconfiguration: logged and retried like the others, the mail waits
        raise SessionError("configuration", host, port, str(exc)) from None
    lmtp = _flag(extra["relay_lmtp"]) if "relay_lmtp" in extra else bool(config.get("lmtp"))
    username = password = None
    if host == str(config.get("host")) and port == int(config.get("port") or 0) and config.get("username"):
        username = str(config["username"])
        password = read_password(config, host, port)
    return Security(ssl=ssl_on, starttls=starttls, username=username, password=password, lmtp=lmtp,
                    verify=config.get("verify", True) is not False, ca_file=config.get("ca_file"))


def read_password(config: dict[str, Any], host: str, port: int) -> str:
    """``password``, else the first line of ``password_file``, else the variable ``password_env`` names."""
    if config.get("password") is not None:
        return str(config["password"])
    if config.get("password_file"):
        try:
            with open(config["password_file"], encoding="utf-8") as file:
                return file.readline().rstrip("\r\n")
        except OSError as exc:
            raise SessionError("credentials unavailable", host, port,
                               f"cannot read password_file {config['password_file']}: {exc.strerror}") from None
    if config.get("password_env"):
        value = os.environ.get(str(config["password_env"]))
        if value is None:
            raise SessionError("credentials unavailable", host, port,
                               f"the environment variable {config['password_env']} is not set")
        return value
    raise SessionError("credentials unavailable", host, port,
                       "relay_config has a username but no password, password_file or password_env")
