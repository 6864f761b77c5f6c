"""The receiver process: aiosmtpd on ``receiver_config``, spooling through SpoolHandler.

It owns the event loop (no Controller thread): one process, one loop, and a
small thread pool for the blocking parts (fsync, Redis). SIGTERM stops
accepting connections, lets open sessions finish for a few seconds, then exits.

On top of aiosmtpd (command line 512 octets, text line 1000, SIZE, the idle
``smtp_timeout`` between commands) the protocol class adds what a server
facing the Internet needs: a strict RFC 5321 path parser, a cap on open
sessions (``max_connections``: 421) and on those of one client
(``max_connections_per_ip``: 421), a short deadline for a session outside a
mail transaction (``smtp_start_timeout``: 421), so idle sockets cannot hold
the slots, and a wall-clock limit per session (``smtp_session_timeout``:
421), so a client cannot hold a session forever by sending NOOP or RSET. With ``receiver_user`` it binds as root (port 25)
and then runs as that user. docs/security.md explains each one.

With ``receiver_tls`` (a certificate and key) it offers STARTTLS, and with
``"require": True`` refuses MAIL before it (530 5.7.0). With
``submission_config`` the same process also listens on a submission port
(STARTTLS required there, AUTH PLAIN/LOGIN after it, users from a file:
lamson.receiver.auth); an authenticated client may send to any domain, any
other client on either port only to the served ones.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import pwd
import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, AnyStr, cast

from aiosmtpd.smtp import SMTP, AuthResult, syntax

from lamson import logs
from lamson.connection import connect, redact
from lamson.names import names_for
from lamson.private import keep_private
from lamson.receiver import loop_name, run_loop
from lamson.receiver.auth import AuthConfigError, UsersAuthenticator, load_users, tls_context
from lamson.receiver.authlimit import Policy, RedisLimiter
from lamson.receiver.checks import BadPath, parse_path, served_domains
from lamson.receiver.enqueue import Enqueuer
from lamson.receiver.handler import SpoolHandler
from lamson.recycle import reserve_files
from lamson.redis_check import persistence_problems
from lamson.runtime import build_runtime
from lamson.settings import app_root
from lamson.typed_settings import Settings

log = logging.getLogger("lamson.receiver")

#: How long open sessions may run after SIGTERM before the process exits.
DRAIN_SECONDS = 10.0

#: Failed AUTH attempts a session may make before it is closed (421 4.7.0).
MAX_AUTH_FAILURES = 3

#: aiosmtpd's reply to a command before STARTTLS when TLS is required, and ours (RFC 3207 4).
_NEED_TLS = "530 Must issue a STARTTLS command first"
NEED_TLS = "530 5.7.0 Must issue a STARTTLS command first"


class ReceiverError(Exception):
    """The receiver cannot start safely (e.g. Redis spool without persistence)."""


def client_of(peer: Any) -> str:
    """Whose sessions a peer's count against: its IPv4 address, or its IPv6 /64.

    One IPv6 host usually has a whole /64 to pick source addresses from, so
    counting single IPv6 addresses would not limit anyone. IPv4-mapped IPv6
    addresses count as the IPv4 address.
    """
    host = peer[0] if isinstance(peer, tuple) and peer else str(peer)
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # a Unix socket path or something unusual: counted as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Sessions:
    """How many SMTP sessions are open, in all (``max_connections``) and per client.

    Only the event loop's thread touches it, so plain counters are enough.
    """

    def __init__(self, limit: int, per_client: int | None = None) -> None:
        self.limit = limit
        self.per_client = per_client if per_client is not None else limit
        self.open = 0
        self.by_client: dict[str, int] = {}

    def refusal(self, client: str) -> str | None:
        """Why a new session from ``client`` must be refused now, or None to accept it."""
        if self.open >= self.limit:
            return f"{self.open} sessions open (max_connections)"
        if self.by_client.get(client, 0) >= self.per_client:
            return f"{self.by_client[client]} sessions open from {client} (max_connections_per_ip)"
        return None

    def add(self, client: str) -> None:
        self.open += 1
        self.by_client[client] = self.by_client.get(client, 0) + 1

    def remove(self, client: str) -> None:
        self.open -= 1
        left = self.by_client.get(client, 0) - 1
        if left > 0:
            self.by_client[client] = left
        else:
            self.by_client.pop(client, None)


class _PendingCheck:
    """Credentials aiosmtpd decoded, to be checked off the event loop (LamsonSMTP._checked)."""

    def __init__(self, mechanism: str, auth_data: Any) -> None:
        self.mechanism = mechanism
        self.auth_data = auth_data


class LamsonSMTP(SMTP):
    """aiosmtpd's SMTP with session caps, two deadlines and a strict path parser."""

    def __init__(self, handler: Any, *, sessions: Sessions, session_timeout: float,
                 start_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        # AUTH only where an authenticator is given (the submission listener); aiosmtpd would
        # otherwise advertise AUTH after STARTTLS on every listener (and refuse every login).
        self._offer_auth = kwargs.get("authenticator") is not None
        self._sessions = sessions
        self._session_timeout = session_timeout
        self._start_timeout = start_timeout
        self._refused = False
        self._client: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._start_deadline: asyncio.TimerHandle | None = None

    @property
    def client(self) -> str | None:
        """Whose session this is (:func:`client_of`): what AUTH failures are counted against."""
        return self._client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is not None:
            # STARTTLS: aiosmtpd calls this again with the TLS transport. Same session slot,
            # same deadlines; aiosmtpd resets the SMTP state (RFC 3207 4.2).
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        client = client_of(peer)
        why = self._sessions.refusal(client)
        if why is not None:
            # Refused before any SMTP state exists: the greeting is the 421 (RFC 5321 3.1).
            self._refused = True
            log.warning("421 to %s: %s", peer, why)
            text = ("Too many connections from your address" if self._sessions.open < self._sessions.limit
                    else "Too many connections")
            # a stream server's transport: an asyncio.Transport
            cast(asyncio.Transport, transport).write(
                f"421 4.7.0 {self.hostname} {text}, try again later\r\n".encode())
            transport.close()
            return
        self._sessions.add(client)
        self._client = client
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self._session_timeout, self._session_expired)
        self._arm_start_deadline()

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        # aiosmtpd cancels the session's handler on EOF and keeps the transport half open (True),
        # so nothing is left to close it: asyncio's loop then notices the closed socket on the next
        # write, uvloop's does not, and the session kept its slot in Sessions until smtp_timeout (a
        # client connecting and closing at once filled max_connections). Nothing more is ever
        # written after EOF, so close now: connection_lost frees the slot at once on either loop.
        if not self._refused:
            super().eof_received()
        return False

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._client is not None:
            self._sessions.remove(self._client)
            self._client = None
        if self._deadline is not None:
            self._deadline.cancel()
        self._disarm_start_deadline()
        super().connection_lost(error)

    # The start deadline: armed whenever no mail transaction is open (from the greeting, and
    # again after DATA, RSET or HELO/EHLO end one), disarmed by an accepted MAIL FROM. It is
    # not pushed back by other commands, so NOOP, RSET or HELO cannot keep an idle session alive.

    def _arm_start_deadline(self) -> None:
        if self._start_timeout and self._start_deadline is None and self.transport is not None:
            self._start_deadline = self.loop.call_later(self._start_timeout, self._start_expired)

    def _disarm_start_deadline(self) -> None:
        if self._start_deadline is not None:
            self._start_deadline.cancel()
            self._start_deadline = None

    def _set_post_data_state(self) -> None:
        """aiosmtpd calls this whenever a transaction ends (DATA done, RSET, HELO/EHLO)."""
        super()._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated
        self._arm_start_deadline()

    async def push(self, status: AnyStr) -> None:
        if status == _NEED_TLS:  # aiosmtpd's reply has no enhanced status code
            await super().push(NEED_TLS)
        elif self._offer_auth or not (isinstance(status, str) and status.startswith("250-AUTH")):
            await super().push(status)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command method name
        if self._tls_protocol is not None:  # aiosmtpd would start TLS inside TLS (RFC 3207 4.2: no)
            await self.push("503 5.5.1 TLS already active")
            return
        await super().smtp_STARTTLS(arg)

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command method name
        if not self._offer_auth:
            await self.push("502 5.5.1 AUTH is offered on the submission port only")
            return
        await super().smtp_AUTH(arg)
        session: Any = self.session
        if session is not None and getattr(session, "auth_failures", 0) >= MAX_AUTH_FAILURES \
                and self.transport is not None:
            log.warning("%r %d failed AUTH attempts; closing", session.peer, session.auth_failures)
            transport: Any = self.transport
            transport.write(f"421 4.7.0 {self.hostname} Too many failed authentications, closing\r\n".encode())
            transport.close()

    # aiosmtpd calls the (synchronous) authenticator inside the event loop; an scrypt check takes
    # ~50 ms, so a stream of AUTH attempts would stall every other session. Its PLAIN and LOGIN
    # decoders stay; the check they end in runs in a thread (hashlib.scrypt releases the GIL).

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        return AuthResult(success=False, handled=False, auth_data=_PendingCheck(mechanism, auth_data))

    async def _checked(self, result: AuthResult) -> AuthResult:
        pending = result.auth_data
        if not isinstance(pending, _PendingCheck):
            return result  # aiosmtpd already answered (bad base64, cancelled challenge)
        authenticator: Any = self._authenticator
        if authenticator is None:
            return AuthResult(success=False, handled=False)
        return await self.loop.run_in_executor(None, authenticator, self, self.session, self.envelope,
                                               pending.mechanism, pending.auth_data)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd's mechanism name
        return await self._checked(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd's mechanism name
        return await self._checked(await super().auth_LOGIN(_, args))

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:  # noqa: N802 - aiosmtpd's command method name
        await super().smtp_MAIL(arg)
        if self.envelope is not None and self.envelope.mail_from:
            self._disarm_start_deadline()  # a transaction is open: smtp_timeout paces it from here

    def _start_expired(self) -> None:
        """No transaction started within ``smtp_start_timeout``: the slot goes to someone else."""
        self._start_deadline = None
        if self.transport is None:
            return
        log.info("%r no mail transaction within %ss (smtp_start_timeout); closing",
                 self.session.peer if self.session else None, self._start_timeout)
        transport: Any = self.transport
        transport.write(f"421 4.4.2 {self.hostname} No mail transaction started in time, closing\r\n".encode())
        transport.close()

    def _session_expired(self) -> None:
        """The session's wall-clock limit: say why, then close (the transaction is not accepted)."""
        if self.transport is None:
            return
        log.info("%r session time limit (%ss) reached; closing", self.session.peer if self.session else None,
                 self._session_timeout)
        transport: Any = self.transport
        transport.write(f"421 4.4.2 {self.hostname} Session time limit exceeded, closing\r\n".encode())
        transport.close()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's parser accepts source routes and RFC 5322 oddities; use RFC 5321's grammar.

        (None, None) makes aiosmtpd answer ``553 5.1.3 Error: malformed address``.
        """
        if not arg:
            return "", ""
        try:
            path = parse_path(arg)
        except BadPath as exc:
            log.info("553 for %r: %s", arg[:300], exc)
            return None, None
        return path.address, path.rest


#: Codecs the standard library looks up lazily on the hot path (socket and Redis
#: host names go through "idna"). Loaded before the uid changes, so a Python
#: installed where the new user cannot read (e.g. under /root) still works.
PRELOAD_CODECS = ("idna", "ascii", "latin-1", "utf-8", "utf-16", "charmap")


def preload() -> None:
    """Import what would otherwise be imported lazily after privileges are gone."""
    import codecs

    for name in PRELOAD_CODECS:
        codecs.lookup(name)
    "lamson".encode("idna")


def drop_privileges(user: str) -> None:
    """Become ``user`` for good (groups, gid, then uid); the listening socket stays open.

    Needs root unless the process already runs as that user.
    """
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ReceiverError(f"receiver_user {user!r} does not exist") from None
    if os.getuid() == entry.pw_uid and os.geteuid() == entry.pw_uid:
        return
    if os.geteuid() != 0:
        raise ReceiverError(f"receiver_user {user!r} needs the receiver started as root (uid is {os.geteuid()})")
    preload()
    os.initgroups(entry.pw_name, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:  # pragma: no cover - only a broken kernel or libc gets here
        raise ReceiverError("privileges could not be dropped: setuid(0) still succeeds")
    log.info("running as %s (uid %d, gid %d)", entry.pw_name, entry.pw_uid, entry.pw_gid)


def build_handler(settings: Settings | ModuleType) -> SpoolHandler:
    """The handler for these settings; refuses a Redis spool that would not keep mail.

    With the Maildir spool, Redis's persistence check and the files kept ready
    (``spool_reserve``) wait until the port serves (:func:`after_listening`):
    neither is needed to accept mail, and a Redis that is slow to answer at
    start (still loading its AOF, a host that drops packets: up to the 2 s
    connect timeout) would otherwise keep every client waiting.
    """
    typed = Settings.of(settings)
    try:
        served = served_domains(typed)
    except ValueError as exc:
        raise ReceiverError(str(exc)) from exc
    if not served:
        log.warning("WARNING: neither served_domains nor router_defaults['host'] is set: "
                    "every recipient except postmaster is refused (550 5.7.1)")
    # The receiver's services, built as every program builds them (it runs no application code: no router,
    # and nothing installed for 1.x entry points).
    runtime = build_runtime(typed.module, "receiver", conn=connect(typed.redis_url, timeout=2.0), install=False)
    conn = runtime.conn
    spool = runtime.spool()
    if typed.spool == "redis":
        problems = redis_problems(typed, conn)
        if problems:
            raise ReceiverError("refusing to start: the Redis spool needs a reachable Redis with AOF and noeviction")
    enqueue = Enqueuer(conn, runtime.names, timeout=typed.job_timeout)
    return SpoolHandler(
        spool,
        enqueue,
        max_recipients=typed.max_recipients,
        hostname=typed.receiver_hostname or socket.gethostname(),
        served=served,
        max_received_headers=typed.max_received_headers,
        authenticated_max_recipients=typed.submission_max_recipients,
    )


def redis_problems(settings: Settings | ModuleType, conn: Any) -> list[str]:
    """Why Redis would not keep what the receiver hands it (each logged as a WARNING)."""
    try:
        problems = persistence_problems(conn)
    except Exception as exc:  # Redis down at start: the Maildir spool still accepts
        problems = [f"cannot reach Redis at {redact(settings.redis_url)} ({exc}); messages stay spooled until it is back"]
    for problem in problems:
        log.warning("WARNING: %s", problem)
    return problems


def after_listening(settings: Settings | ModuleType, handler: SpoolHandler) -> None:
    """Start-up work that accepting mail does not wait for (a thread, once the port serves)."""
    reserve_files(handler.spool, settings)  # a burst's messages reuse files instead of creating them
    conn = getattr(handler.enqueue, "conn", None)
    if settings.spool != "redis" and conn is not None:
        redis_problems(settings, conn)  # the Redis spool checked it before serving


def app_path(path: str | os.PathLike[str]) -> Path:
    """A ``receiver_tls`` or ``submission_config`` file: relative paths are the application's.

    They resolve against the application root (lamson.settings.app_root: ``-root``,
    LAMSON_ROOT, else the current directory), not the directory the receiver happens
    to be started from, so ``config/tls/cert.pem`` means the application's under
    supervisord, systemd or ``lamson receiver -root APP`` from anywhere.
    """
    found = Path(path).expanduser()
    return found if found.is_absolute() else app_root() / found


def auth_limiter(settings: Settings) -> RedisLimiter:
    """The AUTH failure limiter of the submission listener (lamson.receiver.authlimit), on its own
    connection with a short timeout: a check runs in a worker thread, which a slow Redis must not
    hold for long (it then falls back to counting in the process)."""
    policy = Policy(free=settings.auth_free_failures, window=float(settings.auth_failure_window),
                    max_delay=float(settings.auth_max_delay))
    return RedisLimiter(connect(settings.redis_url, timeout=1.0), names_for(settings), policy)


class ListenerSecurity:
    """What ``receiver_tls`` and ``submission_config`` give the listeners, loaded before binding."""

    def __init__(self, settings: Settings | ModuleType) -> None:
        typed = Settings.of(settings)
        tls = typed.receiver_tls or {}
        submission = typed.submission_config or {}
        for name, value in (("receiver_tls", tls), ("submission_config", submission)):
            if not isinstance(value, dict):
                raise ReceiverError(f"{name} must be a dict or None, not {value!r}")
        self.require_tls = bool(tls.get("require", False))
        self.submission: Mapping[str, Any] | None = submission or None
        self.context = None
        self.authenticator: UsersAuthenticator | None = None
        try:
            if tls:
                if not tls.get("cert") or not tls.get("key"):
                    raise ReceiverError("receiver_tls needs both 'cert' and 'key' (paths to PEM files)")
                self.context = tls_context(app_path(tls["cert"]), app_path(tls["key"]))
            elif self.require_tls:
                raise ReceiverError("receiver_tls['require'] needs a 'cert' and 'key'")
            if self.submission is not None:
                if self.context is None:
                    raise ReceiverError("submission_config needs receiver_tls (AUTH is offered over TLS only)")
                for key in ("host", "port", "users"):
                    if not self.submission.get(key) and self.submission.get(key) != 0:
                        raise ReceiverError(f"submission_config needs {key!r}")
                self.authenticator = UsersAuthenticator(load_users(app_path(self.submission["users"])))
                if not self.authenticator.users:
                    log.warning("WARNING: submission users file %r has no users: nobody can AUTH",
                                self.submission["users"])
        except AuthConfigError as exc:
            raise ReceiverError(str(exc)) from exc


async def serve(settings: Settings | ModuleType, stop: asyncio.Event | None = None) -> None:
    """Listen until ``stop`` is set (or SIGTERM/SIGINT), then drain and return.

    Order matters for ``receiver_user``: bind (as root), drop privileges, and
    only then open the spool and Redis, so every file is made by that user.
    The port accepts connections only once it serves them (``lamson wait`` and
    ``lamson start`` take an accepted connection for "ready"), so what can wait
    is done after that (:func:`after_listening`).
    """
    settings = Settings.of(settings)  # typed from here on: the receiver runs no application code
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    host = settings.receiver_config["host"]
    port = settings.receiver_config["port"]
    sessions = Sessions(settings.max_connections, settings.max_connections_per_ip)
    handler: SpoolHandler | None = None
    security = ListenerSecurity(settings)  # certificate, key and users are read before privileges go

    def factory(submission: bool = False) -> SMTP:
        # Port 25 style: STARTTLS when configured (required with receiver_tls["require"]), no AUTH.
        # Submission: STARTTLS always required, then AUTH; unauthenticated clients keep the
        # served-domains rule (lamson.receiver.handler).
        extra: dict[str, Any] = {"tls_context": security.context,
                                 "require_starttls": security.require_tls or submission}
        if submission:
            extra.update(authenticator=security.authenticator, auth_require_tls=True, auth_required=False)
        return LamsonSMTP(
            handler,
            sessions=sessions,
            session_timeout=settings.smtp_session_timeout,
            start_timeout=settings.smtp_start_timeout,
            data_size_limit=settings.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=handler.hostname if handler else socket.gethostname(),
            ident="Lamson ESMTP",
            timeout=settings.smtp_timeout,
            loop=loop,
            **extra,
        )

    server = await loop.create_server(factory, host=host, port=port, reuse_address=True, start_serving=False)
    servers = [server]
    if security.submission is not None:
        servers.append(await loop.create_server(lambda: factory(submission=True), host=security.submission["host"],
                                                port=security.submission["port"], reuse_address=True,
                                                start_serving=False))
    try:
        if settings.receiver_user:
            drop_privileges(settings.receiver_user)
        elif os.geteuid() == 0:
            log.warning("WARNING: the receiver runs as root; set receiver_user to run as an unprivileged user")
        handler = build_handler(settings)
        if security.authenticator is not None:
            security.authenticator.limiter = auth_limiter(settings)
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        for each in servers:
            await each.start_serving()
        late = loop.run_in_executor(None, after_listening, settings, handler)
        log.info("receiver listening on %s:%s%s, spool %r, serving %r, %s event loop", host, port,
                 " (STARTTLS required)" if security.require_tls else " (STARTTLS)" if security.context else "",
                 handler.spool, handler.served, loop_name(loop))
        if security.submission is not None:
            log.info("submission listening on %s:%s (STARTTLS required, AUTH PLAIN LOGIN, %d users)",
                     security.submission["host"], security.submission["port"],
                     len(security.authenticator.users) if security.authenticator else 0)
        await stop.wait()
        await late
    finally:
        log.info("receiver stopping: no new connections, draining for up to %.0fs", DRAIN_SECONDS)
        for each in servers:
            each.close()
        try:
            await asyncio.wait_for(asyncio.gather(*(each.wait_closed() for each in servers)), DRAIN_SECONDS)
        except TimeoutError:
            log.warning("sessions still open after %.0fs; exiting", DRAIN_SECONDS)
        if handler is not None:
            handler.committer.close()  # what was submitted is made durable and answered
        if handler is not None and isinstance(handler.enqueue, Enqueuer):
            handler.enqueue.close()  # what was accepted last gets its job now, not at the next sweep


def run(settings: ModuleType) -> None:
    """Entry point of ``lamson receiver``: serve in the foreground until signalled."""
    keep_private(settings)  # umask 077, run/ and logs/ 0700 even under supervisord -n (lamson.private)
    logs.setup(settings=settings)
    run_loop(serve(settings))
