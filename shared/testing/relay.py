"""Relays for tests, and the test queue their mail lands in.

Two ways of testing an application meet here:

* **In-process** (this project's default): ``config/testing.py`` sets
  ``settings.relay = CapturingRelay()``; handlers call ``relay.deliver(...)`` as
  in production and what they send is kept in memory, so tests need no server
  and no Redis, and parallel test processes never see each other's mail.
* **Against running servers** (Lamson 1.x): replies travel through the real
  pipeline to the logging server (``lamson log``), which stores them in the
  ``run/queue`` Maildir; ``relay(port=8823)`` sends test mail to the running
  receiver over SMTP.

:func:`queue` joins both: ``queue("run/queue")`` is the Maildir *plus* what
CapturingRelays in this process captured for that folder. So 1.x tests
(``queue().count()``, ``delivered(pattern, to_queue=...)``, ``clear_queue()``)
and tests written for this project (``for m in queue()``,
``delivered(addr, body=...)``) both work, whichever relay is configured.

Both test relays build the envelope with the production code
(``lamson.relay.Relay.envelope``: :func:`lamson.relay.envelope_of`, overrides,
checks, Bcc removal) so a test cannot pass on a message the real relay would
send differently.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import smtplib
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default as DEFAULT_POLICY
from pathlib import Path
from typing import Any

from lamson import maildir
from lamson.queue import Queue, as_bytes
from lamson.testing.callable_module import make_callable

__all__ = [
    "TEST_QUEUE", "Captured", "CapturingRelay", "SMTPRelay", "TestQueue", "clear_queue", "delivered",
    "flush_outbox", "outgoing", "queue", "relay", "send_now", "sending_directly",
]

#: The folder tests read replies from when none is named: the logging server's Maildir, as in 1.x.
#: Read at call time, so a test suite may point it elsewhere (``lamson.testing.relay.TEST_QUEUE = ...``).
TEST_QUEUE = "run/queue"

log = logging.getLogger(__name__)

_EOL = re.compile(rb"\r\n|\r|\n")


def _folder(queue_dir: str | os.PathLike[str] | None) -> str:
    """The identity of a test queue folder: its absolute path (``run/queue`` == ``./run/queue/``)."""
    return os.path.abspath(os.fspath(queue_dir if queue_dir is not None else TEST_QUEUE))


# ----------------------------------------------------------------------------- capture


@dataclass(frozen=True)
class CapturedMail:
    """One captured message: the test-queue folder it belongs to, its key, the message."""

    folder: str
    key: str
    message: Any


class Captured:
    """Messages captured in this process, oldest first (one entry per recipient)."""

    _sequence = itertools.count(1)

    def __init__(self) -> None:
        self.entries: list[CapturedMail] = []
        self.lock = threading.Lock()

    @property
    def messages(self) -> list[Any]:
        """Every captured message, oldest first."""
        return self.snapshot()

    def add(self, message: Any, folder: str | None = None) -> str:
        """Keep ``message`` for the test queue ``folder`` (default: TEST_QUEUE); return its key."""
        key = f"captured-{next(self._sequence)}"
        with self.lock:
            self.entries.append(CapturedMail(folder or _folder(None), key, message))
        return key

    def clear(self, folder: str | None = None) -> int:
        """Forget every message (or only those of ``folder``); return how many."""
        with self.lock:
            kept = [e for e in self.entries if folder is not None and e.folder != folder]
            removed = len(self.entries) - len(kept)
            self.entries[:] = kept
        return removed

    def remove(self, key: str) -> bool:
        with self.lock:
            for index, entry in enumerate(self.entries):
                if entry.key == key:
                    del self.entries[index]
                    return True
        return False

    def of(self, folder: str) -> list[CapturedMail]:
        with self.lock:
            return [e for e in self.entries if e.folder == folder]

    def snapshot(self) -> list[Any]:
        with self.lock:
            return [e.message for e in self.entries]


#: Where every CapturingRelay puts what it is given, unless told otherwise.
SENT = Captured()


def outgoing(message: Any, To: str | list[str] | None = None,  # noqa: N803 - the guide's names
             From: str | None = None) -> tuple[bytes, str, list[str]]:  # noqa: N803
    """What the production relay would send for ``deliver(message, To, From)``: (data, sender, recipients).

    This is ``lamson.relay.Relay.envelope`` itself (header or forwarding
    envelope, ``To``/``From`` overrides, address checks, Bcc removed), so a
    test relay can never disagree with the real one; building a Relay
    connects to nothing.
    """
    from lamson.relay import Relay

    envelope, data = Relay().envelope(message, To, From)
    return data, envelope.mail_from, list(envelope.rcpt_tos)


class CapturingRelay:
    """A stand-in for ``lamson.relay.Relay`` that keeps messages instead of sending them.

    Takes the real Relay's arguments (host, port, username, password, ssl,
    starttls, lmtp, debug, redis_url, ...) so a boot file's line works
    unchanged in ``config/testing.py``. Each recipient's copy is stored as
    the logging server would store it (``Return-Path`` and ``X-Original-To``
    added), in the test queue ``queue_dir`` (default: TEST_QUEUE when
    delivering) — in memory, unless ``captured`` names another store.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8825, username: str | None = None,
                 password: str | None = None, ssl: bool = False, starttls: bool = False, lmtp: bool = False,
                 debug: int = 0, *, captured: Captured | None = None,
                 queue_dir: str | os.PathLike[str] | None = None, **_ignored: Any) -> None:
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.ssl = ssl
        self.starttls = starttls
        self.lmtp = lmtp
        self.debug = debug
        self.queue_dir = queue_dir
        self.captured = captured if captured is not None else SENT

    def deliver(self, message: Any, To: str | list[str] | None = None,  # noqa: N803
                From: str | None = None) -> str:  # noqa: N803
        """Capture ``message`` once per recipient, as a MailRequest; return the last key."""
        from lamson.mail import MailRequest
        from lamson.receiver.logserver import envelope_headers

        data, sender, rcpts = outgoing(message, To, From)
        folder = _folder(self.queue_dir)
        key = ""
        for rcpt in rcpts:
            stored = envelope_headers(sender, [rcpt]) + data
            key = self.captured.add(MailRequest("relay", sender, rcpt, stored), folder)
        return key

    def send(self, To: str, From: str, Subject: str, Body: str) -> str:  # noqa: N803
        """Build a plain-text message and deliver it (the guide's Relay.send)."""
        from lamson.mail import MailResponse

        return self.deliver(MailResponse(To=To, From=From, Subject=Subject, Body=Body))

    def reply(self, original: Any, From: str, Subject: str, Body: str) -> str:  # noqa: N803
        """Answer ``original`` (to its From), as 1.x's Relay.reply."""
        return self.send(str(original["from"]), From, Subject, Body)

    def __repr__(self) -> str:
        return f"CapturingRelay({len(self.captured.entries)} captured)"


class SMTPRelay:
    """Sends each message over SMTP at once, from the calling process: what :func:`relay` returns.

    Lamson 1.x's Relay did this, and its tests used it to talk to a running
    server (``relay(port=8823)``). Handlers in production use
    ``lamson.relay.Relay``, which queues instead. Errors are raised, not
    logged away as 1.x did: a test must fail when its mail was not sent.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8824, username: str | None = None,
                 password: str | None = None, ssl: bool = False, starttls: bool = False, lmtp: bool = False,
                 debug: int = 0, *, timeout: float = 30.0, ssl_context: ssl_module.SSLContext | None = None,
                 **_ignored: Any) -> None:
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.ssl = ssl
        self.starttls = starttls
        self.lmtp = lmtp
        self.debug = debug
        self.timeout = timeout
        self.ssl_context = ssl_context

    def _connect(self) -> smtplib.SMTP:
        if self.lmtp:
            client: smtplib.SMTP = smtplib.LMTP(self.host, self.port, timeout=self.timeout)
        elif self.ssl:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        client.set_debuglevel(self.debug)
        try:
            client.ehlo_or_helo_if_needed()
            if self.starttls:
                client.starttls(context=self.ssl_context)
                client.ehlo()
            if self.username is not None:
                client.login(self.username, self.password or "")
        except BaseException:
            client.close()
            raise
        return client

    def deliver(self, message: Any, To: str | list[str] | None = None,  # noqa: N803
                From: str | None = None) -> dict[str, tuple[int, bytes]]:  # noqa: N803
        """Send now; returns the recipients the server refused (smtplib raises if it refused all)."""
        data, sender, rcpts = outgoing(message, To, From)
        return self.send_envelope(sender, rcpts, data)

    def send_envelope(self, sender: str, rcpts: list[str], data: bytes) -> dict[str, tuple[int, bytes]]:
        """Send ``data`` as it is, with this envelope (what :meth:`deliver` does once it has built them)."""
        data = _EOL.sub(b"\r\n", data)
        options = ["SMTPUTF8"] if not all(a.isascii() for a in [sender, *rcpts]) else []
        client = self._connect()
        try:
            return client.sendmail(sender, rcpts, data, mail_options=options)
        finally:
            try:
                client.quit()
            except smtplib.SMTPException:
                client.close()

    def send(self, To: str, From: str, Subject: str, Body: str) -> dict[str, tuple[int, bytes]]:  # noqa: N803
        from lamson.mail import MailResponse

        return self.deliver(MailResponse(To=To, From=From, Subject=Subject, Body=Body))

    def reply(self, original: Any, From: str, Subject: str, Body: str) -> dict[str, tuple[int, bytes]]:  # noqa: N803
        """Answer ``original`` (to its From), as 1.x's Relay.reply."""
        return self.send(str(original["from"]), From, Subject, Body)

    def __repr__(self) -> str:
        return f"SMTPRelay(host={self.host!r}, port={self.port})"


def relay(hostname: str = "127.0.0.1", port: int = 8824, **options: Any) -> SMTPRelay:
    """Lamson 1.x's ``relay(hostname, port)``: a relay that sends over SMTP right away.

    Use it to send test mail to a running server (``relay(port=8823)`` is the
    receiver of ``lamson start``); ``options`` are SMTPRelay's (username,
    password, ssl, starttls, lmtp, debug, timeout). Nothing connects until
    a message is delivered.
    """
    return SMTPRelay(hostname, port, **options)


def send_now(relay: Any, envelope: Any, data: bytes) -> str:
    """Send what a real ``lamson.relay.Relay`` was given at once, over SMTP to its host and port, as 1.x did.

    An application whose ``config/testing.py`` still has 1.x's
    ``settings.relay = Relay(host=..., port=8825)`` tests against a running
    ``lamson log``, with no relay worker to empty the outbox: a
    RouterConversation therefore routes with this as the Relay's sender
    (:func:`lamson.relay.client.sending_with`), so a reply is in ``run/queue``
    when ``say`` returns. A refusal is raised, naming the server to start (1.x
    logged it and lost the mail). Returns ``smtp:HOST:PORT``: there is no outbox key.
    """
    smtp = SMTPRelay(relay.host or "127.0.0.1", relay.port, username=relay.username, password=relay.password,
                     ssl=bool(relay.ssl), starttls=bool(relay.starttls), lmtp=bool(relay.lmtp),
                     debug=int(relay.debug or 0))
    try:
        smtp.send_envelope(envelope.mail_from, list(envelope.rcpt_tos), data)
    except (OSError, smtplib.SMTPException) as exc:
        raise ConnectionError(f"the test could not send through {relay!r} to {smtp.host}:{smtp.port} "
                              f"(is `lamson log -port {smtp.port}` running?): {exc}") from exc
    return f"smtp:{smtp.host}:{smtp.port}"


#: What Relays outside any worker wrote into an outbox in this process and nobody has sent yet:
#: ``(relay, outbox, key)``, oldest first (see :func:`flush_outbox`).
_UNSENT: list[tuple[Any, Any, str]] = []
_UNSENT_LOCK = threading.Lock()


def _remember(relay: Any, outbox: Any, key: str) -> None:
    with _UNSENT_LOCK:
        _UNSENT.append((relay, outbox, key))


def flush_outbox() -> int:
    """Send now what real Relays of this process left in the outbox outside a worker; return how many.

    A 1.x test that runs the handlers itself (``Router.deliver(message)``,
    not a RouterConversation) with 1.x's ``config/testing.py`` leaves their
    replies in the outbox, where no relay worker runs to take them. Reading
    the test queue (:class:`TestQueue`, so ``queue()``, ``delivered()``,
    ``clear_queue()``) first takes each such message from the outbox as a
    relay worker would (claimed, so a running relay worker never sends it
    too) and sends it with :func:`send_now`: the reply is in ``run/queue``
    when the test looks, as in 1.x. A message another worker took first is
    left to it. One that cannot be sent (no ``lamson log`` there) is put back
    and logged, not raised: it may have been written by another test, with
    its own relay, and 1.x too only logged what it could not send; the test
    that expected it fails on its missing reply, with this warning in its log.
    """
    worker = f"test.{os.getpid()}"
    sent = 0
    while True:
        with _UNSENT_LOCK:
            if not _UNSENT:
                return sent
            relay, outbox, key = _UNSENT.pop(0)
        spooled = outbox.claim(key, worker)
        if spooled is None:  # sent by a relay worker, or the outbox is gone with its test
            continue
        try:
            send_now(relay, spooled.envelope, spooled.data)
        except ConnectionError as exc:  # left where it was, for a relay worker; the test sees no reply
            outbox.release(spooled, worker)
            log.warning("%s; message %s stays in the outbox", exc, key)
            continue
        except BaseException:
            outbox.release(spooled, worker)
            raise
        outbox.finish(key, worker)
        sent += 1


def sending_directly() -> Any:
    """While inside: a real Relay outside any worker sends at once with :func:`send_now` (RouterConversation)."""
    from lamson.relay.client import sending_with

    return sending_with(send_now)


# ----------------------------------------------------------------------------- the test queue


class TestQueue:
    """A test queue: a Maildir on disk plus what this process's CapturingRelays captured for it.

    Has Lamson 1.x's queue methods (``keys``, ``get``, ``pop``, ``push``,
    ``remove``, ``count``, ``clear``) and behaves as the list of its messages
    (``for message in queue()``, ``len``, ``queue()[0]``), oldest first: the
    Maildir's messages, then the captured ones. A missing Maildir reads as
    empty and is created only by ``push``, so tests run anywhere do not
    litter the current directory.
    """

    __test__ = False  # a library class, not a pytest test class

    def __init__(self, queue_dir: str | os.PathLike[str] | None = None, captured: Captured | None = None) -> None:
        self.path = Path(_folder(queue_dir))
        self.captured = captured if captured is not None else SENT

    def _maildir(self) -> Queue | None:
        if not (self.path / "new").is_dir():
            return None
        return Queue(self.path)

    def _captured(self) -> list[CapturedMail]:
        return self.captured.of(str(self.path))

    def keys(self) -> list[str]:
        flush_outbox()
        disk = self._maildir()
        return (disk.keys() if disk is not None else []) + [e.key for e in self._captured()]

    def get(self, key: str) -> Any:
        """The message under ``key`` (a MailRequest), or None; it stays in the queue."""
        for entry in self._captured():
            if entry.key == key:
                return entry.message
        disk = self._maildir()
        return disk.get(key) if disk is not None else None

    def remove(self, key: str) -> bool:
        if self.captured.remove(key):
            return True
        disk = self._maildir()
        return disk.remove(key) if disk is not None else False

    def pop(self) -> tuple[str | None, Any]:
        """Take out the oldest message: ``(key, message)``, or ``(None, None)`` when empty."""
        for key in self.keys():
            message = self.get(key)
            if message is not None and self.remove(key):
                return key, message
        return None, None

    def push(self, message: Any) -> str:
        """Store a message in the Maildir (created if missing); return its key."""
        return Queue(maildir.ensure(self.path)).push(message)

    def count(self) -> int:
        return len(self.keys())

    def clear(self) -> int:
        """Empty the Maildir and forget the captured messages; return how many went."""
        flush_outbox()
        disk = self._maildir()
        removed = disk.clear() if disk is not None else 0
        return removed + self.captured.clear(str(self.path))

    def messages(self) -> list[Any]:
        """Every message, oldest first."""
        found = (self.get(key) for key in self.keys())
        return [m for m in found if m is not None]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.messages())

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: int) -> Any:
        return self.messages()[index]

    def __repr__(self) -> str:
        return f"TestQueue({str(self.path)!r}, {self.count()} messages)"


def queue(queue_dir: str | os.PathLike[str] | None = None) -> TestQueue:
    """The test queue ``queue_dir`` (default: TEST_QUEUE, ``run/queue``), as Lamson 1.x's ``queue()``."""
    return TestQueue(queue_dir)


def clear_queue(queue_dir: str | os.PathLike[str] | None = None) -> int:
    """Empty the test queue: its Maildir and this process's captured messages for it."""
    return queue(queue_dir).clear()


# ----------------------------------------------------------------------------- finding mail


def _texts(message: Any) -> tuple[str, str]:
    """(whole message, decoded text): the raw message as text, and its decoded headers and text parts.

    Patterns are searched in both, so ``"Grüße"`` finds a base64 or
    RFC 2047-encoded body or subject, and ``"Content-Type: text/plain"`` the raw text.
    """
    raw = getattr(message, "original", None)
    data = raw if isinstance(raw, bytes) else as_bytes(message)
    parsed = message_from_bytes(data, policy=DEFAULT_POLICY)
    headers = []
    for name, value in parsed.items():
        try:
            headers.append(f"{name}: {value}")
        except Exception:  # noqa: BLE001 - an undecodable header is still in the raw text
            continue
    bodies = []
    for part in parsed.walk():
        if part.get_content_maintype() != "text":
            continue
        try:
            bodies.append(part.get_content())
        except Exception:  # noqa: BLE001 - an undecodable part is still in the raw text
            continue
    body = "\n".join(bodies)
    return data.decode("utf-8", "replace"), "\n".join(headers) + "\n\n" + body


def _body_text(message: Any) -> str:
    return _texts(message)[1].split("\n\n", 1)[1]


def _compile(pattern: str | re.Pattern[str], flags: int = 0) -> re.Pattern[str]:
    return pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, re.IGNORECASE | flags)


def matches(message: Any, pattern: str | re.Pattern[str], body: str | re.Pattern[str] | None = None) -> bool:
    """True if ``pattern`` is found in the whole message (and ``body`` in its decoded text parts)."""
    regex = _compile(pattern)
    whole, decoded = _texts(message)
    if not (regex.search(whole) or regex.search(decoded)):
        return False
    return body is None or bool(_compile(body, re.DOTALL).search(_body_text(message)))


def delivered(pattern: str | re.Pattern[str], to_queue: Any = None, *,
              body: str | re.Pattern[str] | None = None) -> Any:
    """The first message in the test queue in which ``pattern`` is found, else False (Lamson 1.x).

    ``pattern`` is a regular expression searched, case-insensitively (as
    addresses are), in the whole message: headers (with the envelope's
    ``X-Original-To``) and body, raw and decoded. ``to_queue`` is a queue
    (``queue("run/posts")``, a ``lamson.queue.Queue``) or a folder; default
    TEST_QUEUE. ``body=`` additionally requires a match in the decoded text
    parts. Nothing is removed.
    """
    found = _find(pattern, to_queue, body, exclude=frozenset())
    return found if found is not None else False


def _as_queue(to_queue: Any) -> Any:
    if to_queue is None or isinstance(to_queue, str | os.PathLike):
        return queue(to_queue)
    return to_queue


def _find(pattern: str | re.Pattern[str], to_queue: Any, body: str | re.Pattern[str] | None,
          exclude: frozenset[str]) -> Any:
    inq = _as_queue(to_queue)
    for key in inq.keys():
        if key in exclude:
            continue
        message = inq.get(key)
        if message is not None and matches(message, pattern, body):
            return message
    return None


def wait_delivered(pattern: str | re.Pattern[str], *, to_queue: Any = None, exclude: frozenset[str] = frozenset(),
                   timeout: float = 0.0, body: str | re.Pattern[str] | None = None,
                   clock: Callable[[], float] = time.monotonic) -> Any:
    """Like :func:`delivered`, ignoring keys in ``exclude`` and polling up to ``timeout`` seconds.

    Replies through the real pipeline arrive after the SMTP transaction
    that caused them; in-process captures are there at once (no wait).
    """
    deadline = clock() + timeout
    while True:
        found = _find(pattern, to_queue, body, exclude)
        if found is not None or clock() >= deadline:
            return found if found is not None else False
        time.sleep(0.05)


def _listen() -> None:
    from lamson.relay.client import on_standalone_write

    on_standalone_write(_remember)


_listen()
make_callable(__name__, relay)
