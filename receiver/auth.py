"""STARTTLS and AUTH for the receiver: the TLS context and the submission users file.

The receiver never runs application code, so AUTH is checked against a file
of users and password hashes named by ``submission_config["users"]``, one
user a line::

    # comments and blank lines are ignored
    alice:scrypt$16384$8$1$<salt, base64>$<hash, base64>

``lamson passwd USER`` prints such a line (:func:`hash_password`). The hash is
``hashlib.scrypt`` (RFC 7914) with the parameters written in the line, so they
can be raised later without invalidating older lines. The file is read once,
when the receiver starts (before it drops privileges, so it may be readable by
root only); restart the receiver after changing it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword

from lamson import metrics
from lamson.receiver.authlimit import THROTTLED, Limiter, account_tag

log = logging.getLogger("lamson.receiver")

#: scrypt cost for new hashes: about 50 ms and 16 MiB per check.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 16384, 8, 1
_MAXMEM = 64 * 1024 * 1024


class AuthConfigError(ValueError):
    """The TLS or submission settings cannot work; the text says why."""


def tls_context(cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or later) with this certificate chain and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise AuthConfigError(f"receiver_tls: cannot load certificate {str(cert)!r} and key {str(key)!r}: {exc}") from exc
    return context


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The users-file form of ``password``: ``scrypt$N$r$p$salt$hash``."""
    salt = os.urandom(16)
    digest = _scrypt(password.encode("utf-8"), salt, n, r, p)
    return "$".join(("scrypt", str(n), str(r), str(p),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


def verify_password(password: bytes, stored: str) -> bool:
    """True when ``password`` matches the ``scrypt$...`` hash ``stored`` (constant time)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def load_users(path: str | os.PathLike[str]) -> dict[str, str]:
    """``user -> hash`` from a users file; a malformed line is an error naming its number."""
    users: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"submission users file {str(path)!r}: {exc}") from exc
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, stored = line.partition(":")
        if not colon or not user or not stored.startswith("scrypt$") or stored.count("$") != 5:
            raise AuthConfigError(f"submission users file {str(path)!r} line {number}: "
                                  "expected user:scrypt$N$r$p$salt$hash (lamson passwd USER prints one)")
        users[user] = stored
    return users


class UsersAuthenticator:
    """aiosmtpd ``authenticator``: AUTH PLAIN/LOGIN against a users file's scrypt hashes.

    An unknown user costs the same scrypt as a known one, so timing does not
    tell which users exist. With a ``limiter`` (lamson.receiver.authlimit, set
    by the receiver once Redis is known) every attempt first passes its gates,
    so guessing is bounded across sessions, processes and hosts.

    What the log shows of a failed attempt's login: the name itself only when
    it is an account of the users file; anything else may be a password typed
    in the user name field, so it is shown as ``unknown user #TAG`` (a hash
    prefix, :func:`lamson.receiver.authlimit.account_tag`: repeated attempts
    with one name can be told apart, the text cannot be read). Passwords are
    never logged.
    """

    def __init__(self, users: Mapping[str, str], limiter: Limiter | None = None) -> None:
        self.users = dict(users)
        self.limiter = limiter
        self._dummy = hash_password("not a password")

    def check(self, login: bytes, password: bytes) -> str | None:
        """The user name when ``login``/``password`` are right, else None."""
        user = _login_text(login)
        stored = self.users.get(user) if user else None
        ok = verify_password(password, stored or self._dummy)
        return user if ok and stored is not None else None

    def shown(self, login: bytes) -> str:
        """How the log names the login of an attempt (see the class docstring)."""
        user = _login_text(login)
        return repr(user) if user and user in self.users else f"unknown user #{account_tag(user)}"

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = _login_text(auth_data.login)
        client = getattr(server, "client", None) or str(getattr(session, "peer", ""))
        if self.limiter is not None:
            wait = self.limiter.admit(login, client)
            if wait > 0:
                session.auth_failures = getattr(session, "auth_failures", 0) + 1
                metrics.RECEIVER.add("auth_throttled")
                log.warning("454 AUTH %s throttled for %s from %r: %d failures, next attempt in %.1fs",
                            mechanism, self.shown(auth_data.login), session.peer,
                            session.auth_failures, wait)
                return AuthResult(success=False, handled=False, message=THROTTLED)
        user = self.check(auth_data.login, auth_data.password)
        if user is None:
            session.auth_failures = getattr(session, "auth_failures", 0) + 1  # LamsonSMTP closes after a few
            metrics.RECEIVER.add("auth_failures")
            log.warning("535 AUTH %s failed for %s from %r", mechanism, self.shown(auth_data.login), session.peer)
            return AuthResult(success=False, handled=False)
        if self.limiter is not None:
            self.limiter.succeeded(login, client)
        log.info("AUTH %s as %r from %r", mechanism, user, session.peer)
        return AuthResult(success=True, handled=False, auth_data=user)


def _login_text(login: bytes) -> str:
    try:
        return login.decode("utf-8")
    except UnicodeDecodeError:
        return login.decode("utf-8", "surrogateescape")
