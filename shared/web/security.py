"""What keeps ``lamson web`` from becoming a way into the application (docs/web.md, docs/security.md).

The web process reads every message the application received and sent, and sends mail as anyone to
its receiver: whoever reaches it can do both. So:

- It listens on loopback unless a password exists (``web_password``, or the content of
  ``run/web.token``): :func:`check_bind` refuses any other address without one, and ``lamson check``
  says so beforehand (:func:`exposure_findings`).
- With a password, every request needs HTTP Basic auth (any user name), compared in constant time.
- On loopback without a password, the ``Host`` header must name a loopback host: a page on another
  site that re-points its own name at 127.0.0.1 (DNS rebinding) is refused before it reads anything.
- Every POST carries the per-process token (``X-CSRF-Token``, which the page reads from
  ``GET /api/session`` or the ``lamson_csrf`` cookie, SameSite=Strict), and an ``Origin`` header, when
  the browser sends one, must be the server's own: another site's page cannot send mail through us.
- API answers are never cached (``Cache-Control: no-store``); pages get a Content-Security-Policy
  that runs only our own scripts and refuses to be framed, except the sanitised message HTML, which
  carries its own sandboxing policy and may be framed by our page only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from lamson.typed_settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The token file that stands for ``web_password`` (its content, stripped, is the password).
TOKEN_FILE = "web.token"

#: The policy of our own pages: our scripts and styles only, nothing fetched elsewhere, never framed.
PAGE_CSP = ("default-src 'self'; frame-src 'self'; img-src 'self' data:; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'")

#: The name of the cookie holding the CSRF token, for the page's scripts (not HttpOnly on purpose).
CSRF_COOKIE = "lamson_csrf"
CSRF_HEADER = "x-csrf-token"

#: Methods that change nothing: no CSRF token needed.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or ``localhost``) can only be reached from this machine.

    ``0.0.0.0``, ``::`` and the empty string listen everywhere; any other name is resolved by
    whoever asks, so only ``localhost`` is trusted by name.
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def password_for(settings: Settings, root: Path) -> str | None:
    """The password the server asks for: ``web_password``, else the content of ``run/web.token``, else None.

    The token file lets a deployment keep the secret out of the settings module (which is often in
    version control); an empty file counts as no password.
    """
    if settings.web_password:
        return str(settings.web_password)
    run_dir = Path(settings.run_dir)
    token = (run_dir if run_dir.is_absolute() else root / run_dir) / TOKEN_FILE
    try:
        text = token.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def bind_refusal(host: str, password: str | None) -> str | None:
    """Why ``lamson web`` must not listen on ``host``, or None when it may."""
    if is_loopback(host) or password:
        return None
    return (f"refusing to listen on {host!r}: anyone who reaches it could read the application's mail and send "
            f"mail as anyone; listen on 127.0.0.1, or set web_password in the settings (or put a password "
            f"in run/{TOKEN_FILE})")


def check_bind(host: str, password: str | None) -> None:
    """Raise CommandError (exit 1) when ``host`` is not loopback and there is no password."""
    from lamson.cli.framework import CommandError

    reason = bind_refusal(host, password)
    if reason is not None:
        raise CommandError(reason)


def exposure_findings(settings: Any, root: str | os.PathLike[str] | None = None) -> list[str]:
    """Warnings for ``lamson check``: ``web_config`` listens beyond this machine (and whether it would start).

    ``settings``: the settings module (or a typed :class:`Settings`); ``root``: where relative folders
    are (the current directory by default, as every stage reads them).
    """
    typed = Settings.of(settings)
    host = str(typed.web_config.get("host", "127.0.0.1"))
    if is_loopback(host):
        return []
    password = password_for(typed, Path(root) if root is not None else Path.cwd())
    if password is None:
        return [f"web_config listens on {host!r}, beyond this machine, with no web_password (nor run/{TOKEN_FILE}): "
                f"lamson web refuses to start so; use 127.0.0.1 (it is a development tool)"]
    return [f"web_config listens on {host!r}: lamson web (every message, and sending as anyone) is reachable "
            f"from other machines behind a password; prefer 127.0.0.1 and an SSH tunnel"]


def basic_password(header: str | None) -> str | None:
    """The password of an ``Authorization: Basic ...`` header, or None when there is none or it is malformed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep else None


def same(a: str | None, b: str) -> bool:
    """Constant-time equality of two secrets (False when ``a`` is missing)."""
    return a is not None and hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def host_name(host_header: str) -> str:
    """The host of a ``Host`` header value, without its port (``[::1]:8880`` → ``::1``)."""
    value = host_header.strip()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers, lower-cased names, latin-1 (as ASGI gives them); the last of repeated names wins."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class SecurityMiddleware:
    """Pure ASGI middleware (streaming answers such as the event stream pass through untouched).

    Order of checks: Host (loopback without a password), password, then CSRF and Origin on anything
    but GET/HEAD/OPTIONS. Headers added to every answer: no caching for ``/api``, the page policy
    (CSP, X-Frame-Options) unless the endpoint set its own, nosniff and no referrer everywhere.
    """

    def __init__(self, app: ASGIApp, *, csrf_token: str, password: str | None, loopback_only: bool) -> None:
        self.app = app
        self.csrf_token = csrf_token
        self.password = password
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            status, text, extra = refusal
            await _send_error(send, status, text, extra)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _secured(list(message.get("headers", [])), path)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """``(status, sentence, extra headers)`` when the request must be refused, else None."""
        host = headers.get("host", "")
        if self.password is None and self.loopback_only and host and not is_loopback(host_name(host)):
            return 403, f"this server answers only to a loopback host name, not {host_name(host)!r}", []
        if self.password is not None and not same(basic_password(headers.get("authorization")), self.password):
            return 401, "a password is needed (HTTP Basic, any user name)", [
                (b"www-authenticate", b'Basic realm="lamson web", charset="UTF-8"')]
        if scope.get("method", "GET").upper() in SAFE_METHODS:
            return None
        if not same(headers.get(CSRF_HEADER), self.csrf_token):
            return 403, "missing or wrong X-CSRF-Token (GET /api/session gives it)", []
        origin = headers.get("origin")
        if origin is not None and origin.rstrip("/") != f"{scope.get('scheme', 'http')}://{host}":
            return 403, f"a request from another origin ({origin}) is refused", []
        return None


def _secured(headers: list[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
    """``headers`` with the security headers added where the endpoint did not set them."""
    present = {name.lower() for name, _ in headers}
    wanted: list[tuple[bytes, bytes]] = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
    if path.startswith("/api/"):
        wanted.append((b"cache-control", b"no-store"))
    wanted += [(b"content-security-policy", PAGE_CSP.encode()), (b"x-frame-options", b"DENY")]
    return headers + [(name, value) for name, value in wanted if name not in present]


async def _send_error(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]]) -> None:
    import json

    body = json.dumps({"error": text}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": _secured(headers, "/api/")})
    await send({"type": "http.response.body", "body": body})


def csrf_cookie(token: str) -> str:
    """The ``Set-Cookie`` value that hands the page its token (read by its scripts: not HttpOnly)."""
    return f"{CSRF_COOKIE}={token}; Path=/; SameSite=Strict"
