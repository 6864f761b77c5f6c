"""``Relay``: the handler-side object of the guide's ``settings.relay``.

``deliver`` never opens an SMTP connection (invariant 3): it writes the
message into the outbox, a spool with the same lifecycle as incoming mail,
and the relay worker delivers it. Inside a router worker the write joins the
routing batch's group commit (it is made durable before the incoming message
leaves the spool, and the relay is woken once per batch); anywhere else (a
script, the CLI) it is durable at once and the relay is woken at once.

The one exception is a test harness's: :func:`sending_with` lets
``lamson.testing``'s RouterConversation, which runs the routing job in the
test process with no relay worker beside it, say how a Relay it did not
build sends while the handlers it runs are at work (Lamson 1.x's tests
relied on ``deliver`` having sent before it returned; docs/routing.md,
"Testing helpers").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import getaddresses, parseaddr
from typing import Any

import redis

from lamson import context, loops, metrics, queues
from lamson.encoding import PLAIN_ADDRESS
from lamson.envelope import ORIGIN, Envelope
from lamson.queue import as_bytes

_BCC = re.compile(rb"^Bcc:.*?\r?\n(?![ \t])", re.IGNORECASE | re.MULTILINE | re.DOTALL)


#: How a Relay outside any worker sends, while a test harness runs handlers in its own process
#: (None: through the outbox, as everywhere else). Set only with :func:`sending_with`.
_send_now: ContextVar[Callable[[Relay, Envelope, bytes], str] | None] = ContextVar("lamson_relay_send_now",
                                                                                   default=None)


@contextmanager
def sending_with(send: Callable[[Relay, Envelope, bytes], str]) -> Iterator[None]:
    """While inside: a Relay with no worker around it hands each message to ``send(relay, envelope, data)``.

    For test harnesses only (lamson.testing): a worker's handlers always
    write into the outbox, and so does a script, whatever is set here.
    """
    token = _send_now.set(send)
    try:
        yield
    finally:
        _send_now.reset(token)


#: Told of each message a Relay outside any worker wrote into the outbox: ``listener(relay, outbox, key)``.
#: lamson.testing listens, so a test that runs handlers itself (1.x's ``Router.deliver(message)``) can
#: send what they wrote before it reads the test queue (lamson.testing.relay.flush_outbox).
_standalone_listeners: list[Callable[[Relay, Any, str], None]] = []


def on_standalone_write(listener: Callable[[Relay, Any, str], None]) -> None:
    """Call ``listener(relay, outbox, key)`` for every outbox write made outside a worker (test harnesses)."""
    if listener not in _standalone_listeners:
        _standalone_listeners.append(listener)


def is_received(message: Any) -> bool:
    """A message that came in through the receiver (a MailRequest), as opposed to one built to send."""
    return hasattr(message, "Peer") and hasattr(message, "Data")


def envelope_of(message: Any) -> tuple[str, list[str]]:
    """Envelope sender and recipients for sending ``message``.

    A message built to send (MailResponse, email Message, bytes): From, and
    To, Cc and Bcc. A received message being forwarded (MailRequest): its
    From, and only the envelope recipient it was routed for — never the
    third parties in its Cc or Bcc, unless the handler names them with To=.
    """
    if isinstance(message, bytes | bytearray | memoryview | str):
        raw = message.encode("utf-8", "surrogateescape") if isinstance(message, str) else bytes(message)
        headers: Any = BytesHeaderParser(policy=SMTP_POLICY).parsebytes(raw)
    else:
        headers = message
    sender = _address(str(headers.get("From") or ""))
    if is_received(message):
        to = message.To
        rcpts = [_address(str(r)) for r in (to if isinstance(to, list | tuple) else [to]) if r]
        return sender, list(dict.fromkeys(r for r in rcpts if r))
    fields = [str(headers.get(name) or "").strip() for name in ("To", "Cc", "Bcc")]
    if all(not field or PLAIN_ADDRESS.fullmatch(field) for field in fields):  # bare addresses: as they are
        rcpts = [field for field in fields if field]
    else:
        rcpts = [addr for _, addr in getaddresses(fields) if addr]
    return sender, list(dict.fromkeys(rcpts))


def _address(value: str) -> str:
    """The address in a header value (parseaddr's, which a bare address comes out of unchanged)."""
    bare = value.strip()
    return bare if PLAIN_ADDRESS.fullmatch(bare) else parseaddr(value)[1]


def strip_bcc(data: bytes) -> bytes:
    """Remove Bcc headers (with their continuation lines) from the header block only."""
    if b"bcc:" not in data[:65536].lower():
        return data
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    return _BCC.sub(b"", head + (b"\r\n" if sep == b"\r\n\r\n" else b"\n")).rstrip(b"\r\n") + sep + body


class Relay:
    """Sends messages through the outbox and the relay worker.

    ``host``/``port`` name the smart host the relay worker delivers these
    messages to (the guide's ``relay_config``). ``username``, ``password``,
    ``ssl``, ``starttls`` (True/"required" or "opportunistic") and ``lmtp`` are
    Lamson 1.x's arguments: these flags are recorded with each message (beside
    the host and port) and the relay worker honours them. ``username`` and
    ``password`` are kept for reading only: credentials are never written into
    the outbox, the relay worker takes them from ``relay_config``.
    Outside a worker process, ``connection``/``redis_url`` and ``outbox`` (or
    the application's settings) say where to write and whom to wake.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8825, username: str | None = None,
                 password: str | None = None, ssl: bool = False, starttls: bool | str = False, lmtp: bool = False,
                 debug: int = 0, *, redis_url: str | None = None, connection: redis.Redis | None = None,
                 outbox: Any = None, settings: Any = None, retries: list[int] | None = None) -> None:
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.ssl = ssl
        self.starttls = starttls
        self.lmtp = lmtp
        self.debug = debug
        self.redis_url = redis_url
        self.retries = retries
        self._conn = connection
        self._outbox = outbox
        self._settings = settings

    def _standalone(self) -> tuple[Any, redis.Redis, Any]:
        """Outside a worker: the application's settings, Redis and outbox (loaded once)."""
        from lamson import settings as lsettings
        from lamson.connection import connect
        from lamson.names import names_for
        from lamson.spool import open_spool

        if self._settings is None:
            self._settings = lsettings.load()
        if self._conn is None:
            self._conn = connect(self.redis_url or self._settings.redis_url)
        if self._outbox is None:
            self._outbox = open_spool(self._settings, self._conn, "outgoing")
        return names_for(self._settings), self._conn, self._outbox

    def envelope(self, message: Any, To: str | list[str] | None = None,
                 From: str | None = None) -> tuple[Envelope, bytes]:
        """The outbox record for ``message``: checked envelope addresses and the bytes to send."""
        sender, rcpts = envelope_of(message)
        data = as_bytes(message)
        if To is not None:
            rcpts = [To] if isinstance(To, str) else list(To)
        if From is not None:
            sender = From
        if not rcpts:
            raise ValueError("message has no recipients (no To/Cc/Bcc and no To= given)")
        for address in [sender, *rcpts]:
            if any(ch in address for ch in "\r\n\x00<>"):
                raise ValueError(f"refusing envelope address with control or bracket characters: {address!r}")
        extra = {"relay_host": self.host, "relay_port": str(self.port), **metrics.origin_extra()}
        # The non-secret flags only (credentials stay in relay_config, read by the relay worker).
        for flag, value in (("relay_ssl", self.ssl), ("relay_starttls", self.starttls), ("relay_lmtp", self.lmtp)):
            if value:
                extra[flag] = "required" if value is True and flag == "relay_starttls" else str(value)
        handling = context.handled()
        if handling is not None:  # sent by a handler while it handled a message: automatic mail
            extra[loops.AUTO] = "1"
            extra[loops.LOOP] = str(handling.traces)
            if handling.id:
                extra[ORIGIN] = handling.id  # the relay's log lines name the message this answers
        return Envelope(mail_from=sender, rcpt_tos=tuple(rcpts), queue="outgoing", extra=extra), strip_bcc(data)

    def deliver(self, message: Any, To: str | list[str] | None = None, From: str | None = None) -> str:
        """Put ``message`` in the outbox for the relay worker; returns its outbox key.

        Recipients default to the To/Cc/Bcc headers (Bcc is removed from what
        is sent) — or, for a received message being forwarded, to the address
        it was received for; the sender to the From header; ``From=""`` sends
        with the null reverse-path ``<>`` (bounces, DSNs). Under a test harness's
        :func:`sending_with` (and outside a worker) the harness sends it and says what it returns.
        """
        envelope, data = self.envelope(message, To, From)
        ctx = context.get()
        if ctx is not None and ctx.outbox is not None and self._outbox is None:
            key: str = ctx.outbox.put(envelope, data, sync=False)
            ctx.pending_outbox.append(key)  # made durable by the routing batch's commit, relay woken then
            return key
        send_now = _send_now.get() if ctx is None and self._outbox is None else None
        if send_now is not None:  # a test harness routing in its own process: sent before returning
            return send_now(self, envelope, data)
        names, conn, outbox = self._standalone()
        key = outbox.put(envelope, data)
        for listener in _standalone_listeners:
            listener(self, outbox, key)
        try:
            queues.wake_relay(conn, names, [key])
        except (redis.ConnectionError, redis.TimeoutError):
            pass  # in the outbox: the relay's sweeper finds it
        return key

    def send(self, To: str, From: str, Subject: str, Body: str) -> str:
        """Build a plain-text message and deliver it (the guide's Relay had this)."""
        from lamson.mail import MailResponse

        return self.deliver(MailResponse(To=To, From=From, Subject=Subject, Body=Body))

    def reply(self, original: Any, From: str, Subject: str, Body: str) -> str:
        """Answer ``original`` (to its From), as Lamson 1.x's ``Relay.reply``."""
        return self.send(str(original["from"]), From, Subject, Body)

    def __repr__(self) -> str:
        return f"Relay(host={self.host!r}, port={self.port})"
