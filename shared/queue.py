"""The guide's Maildir queue: ``Queue("run/posts").push(message)``.

A queue is a Maildir any tool can read (mutt, ``lamson queue``), written
durably through :mod:`lamson.maildir`. ``pop`` claims a message by renaming it,
so several processes (or hosts sharing the directory) can pop from one queue
and each message goes to exactly one of them.

Lamson 1.x's signature is kept: ``Queue(queue_dir, safe=False, pop_limit=0,
oversize_dir=None)``. ``safe`` names files by a hash of the host name instead
of the name itself; ``pop_limit`` makes :meth:`Queue.pop` set aside messages
bigger than that many bytes (into ``oversize_dir``, or deletes them) instead
of handing them to a process that would choke on them.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from lamson import maildir

log = logging.getLogger(__name__)

_counter = itertools.count()


def as_bytes(message: Any) -> bytes:
    """Bytes of a message given as bytes, str, MailRequest/MailResponse or email Message."""
    if isinstance(message, bytes | bytearray | memoryview):
        return bytes(message)
    if isinstance(message, str):
        return message.encode("utf-8", "surrogateescape")
    if hasattr(message, "as_bytes"):
        return cast(bytes, message.as_bytes())  # MailRequest, MailResponse, email's Message: all bytes
    return bytes(message)


def safe_host() -> str:
    """A stand-in for the host name in Maildir keys: the first 16 hex digits of its SHA-256.

    Host names may hold characters a Maildir key may not (``/``, ``:``, which
    the usual escapes turn into a backslash), and keys are visible to anyone
    who can list the directory; a hash is always a valid key part and still
    tells hosts sharing a directory apart.
    """
    return hashlib.sha256(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:16]


def safe_key() -> str:
    """A unique Maildir key (time, microseconds, pid, counter) ending in :func:`safe_host`."""
    now = time.time()
    sec = int(now)
    return f"{sec}.M{int((now - sec) * 1_000_000)}P{os.getpid()}Q{next(_counter)}.{safe_host()}"


def queue_group(queue_dir: str | os.PathLike[str]) -> str:
    """The worker group that serves a Maildir queue (``run/posts`` → ``q-posts``): :func:`lamson.groups.queue_group`."""
    from lamson.groups import queue_group as group_of

    return group_of(queue_dir)


def receivers_key(names: Any) -> str:
    """The Redis set of the queue groups some QueueReceiver serves (so pushes elsewhere wake nobody)."""
    return str(names.key("queue-receivers"))


def wake_receiver(queue_dir: str | os.PathLike[str], key: str) -> bool:
    """In a worker process: wake the QueueReceiver of this folder, if one is announced. Never raises."""
    from lamson import context

    ctx = context.get()
    if ctx is None:
        return False
    group = queue_group(queue_dir)
    try:
        if not ctx.conn.sismember(receivers_key(ctx.names), group):
            return False
        from lamson import queues

        queues.wake_router(ctx.conn, ctx.names, group, [key])
        return True
    except Exception:  # Redis trouble: the receiver's sweep finds the message
        return False


class Queue:
    """A Maildir used as a queue of messages.

    ``safe``: name new files by a hash of the host name (see :func:`safe_host`).
    ``pop_limit``: when above 0, :meth:`pop` never returns a message bigger than
    this many bytes: it moves it to ``oversize_dir`` (a Maildir, created if
    missing; the message lands in its ``new/``) or, with no ``oversize_dir``,
    deletes it, and goes on to the next. ``sync=False`` skips the fsyncs (tests,
    scratch queues); by default every write is durable.
    """

    def __init__(
        self,
        queue_dir: str | os.PathLike[str],
        safe: bool = False,
        pop_limit: int = 0,
        oversize_dir: str | os.PathLike[str] | None = None,
        *,
        sync: bool = True,
    ) -> None:
        if pop_limit < 0:
            raise ValueError("pop_limit must be 0 (no limit) or a number of bytes")
        self.path = maildir.ensure(queue_dir)
        self.safe = bool(safe)
        self.pop_limit = int(pop_limit)
        self.oversize_dir = maildir.ensure(oversize_dir) if oversize_dir is not None else None
        if self.oversize_dir is not None and self.oversize_dir.resolve() == self.path.resolve():
            raise ValueError("oversize_dir must not be the queue itself")
        self.sync = sync

    def push(self, message: Any) -> str:
        """Store a message durably; return its key.

        Inside a Lamson worker, a QueueReceiver serving this folder is woken at
        once (otherwise its sweep finds the message within its ``sleep``).
        """
        key = maildir.write(self.path, as_bytes(message), key=safe_key() if self.safe else None, sync=self.sync)
        wake_receiver(self.path, key)
        return key

    def pop(self) -> tuple[str | None, Any]:
        """Claim and remove the oldest message: ``(key, MailRequest)``, or ``(None, None)`` when empty.

        With a ``pop_limit``, bigger messages are set aside (:meth:`oversize`) and skipped.
        """
        for sub in ("new", "cur"):
            for key in maildir.keys(self.path, sub):
                src = self.path / sub / key
                claimed = self.path / "tmp" / f".pop.{os.getpid()}.{key}"
                try:
                    os.rename(src, claimed)
                except FileNotFoundError:
                    continue  # another process took it
                if self.pop_limit and os.stat(claimed).st_size > self.pop_limit:
                    self._set_aside_or_restore(claimed, src, key)
                    continue
                try:
                    data = claimed.read_bytes()
                finally:
                    os.unlink(claimed)
                return key, self._request(data)
        return None, None

    def oversize(self, key: str) -> bool:
        """Set one message aside as too big: into ``oversize_dir``, or deleted when there is none.

        True if it was there. Raises maildir.BadKey for unsafe keys.
        """
        path = maildir.locate(self.path, key)
        if path is None:
            return False
        claimed = self.path / "tmp" / f".oversize.{os.getpid()}.{path.name}"
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return False
        self._set_aside_or_restore(claimed, path, key)
        return True

    def _set_aside_or_restore(self, claimed: Path, origin: Path, key: str) -> None:
        """:meth:`_set_aside`, putting the file back where it was if that fails (never lose it in tmp/)."""
        try:
            self._set_aside(claimed, key)
        except BaseException:
            if claimed.exists():
                os.rename(claimed, origin)
            raise

    def _set_aside(self, claimed: Path, key: str) -> None:
        """Move a claimed file into ``oversize_dir/new`` (durably) or delete it."""
        if self.oversize_dir is None:
            log.warning("queue %s: deleted message %s of %d bytes (pop_limit %d, no oversize_dir)",
                        self.path, key, claimed.stat().st_size, self.pop_limit)
            os.unlink(claimed)
            return
        name = key.split(":2,", 1)[0]
        target = self.oversize_dir / "new" / name
        try:
            os.rename(claimed, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # Another file system: copy into tmp/, fsync, rename into new/, then drop ours.
            partial = self.oversize_dir / "tmp" / name
            shutil.copyfile(claimed, partial)
            if self.sync:
                with open(partial, "rb") as handle:
                    os.fsync(handle.fileno())
            os.rename(partial, target)
            os.unlink(claimed)
        if self.sync:
            maildir.fsync_dir(self.oversize_dir / "new")
        log.info("queue %s: message %s is over pop_limit %d bytes: moved to %s", self.path, key,
                 self.pop_limit, self.oversize_dir)

    def get(self, key: str) -> Any:
        """The message stored under ``key`` (a MailRequest), or None if there is none."""
        data = self.get_bytes(key)
        return None if data is None else self._request(data)

    def get_bytes(self, key: str) -> bytes | None:
        """The raw bytes stored under ``key``, or None. Raises maildir.BadKey for unsafe keys."""
        path = maildir.locate(self.path, key)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, key: str) -> bool:
        """Delete one message; True if it was there. Raises maildir.BadKey for unsafe keys."""
        path = maildir.locate(self.path, key)
        if path is None:
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def keys(self) -> list[str]:
        """Every key, new/ then cur/, oldest first within each."""
        return maildir.keys(self.path, "new") + maildir.keys(self.path, "cur")

    def count(self) -> int:
        return len(self.keys())

    def clear(self) -> int:
        """Remove every message; return how many were removed."""
        removed = 0
        for key in self.keys():
            removed += self.remove(key)
        return removed

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for key in self.keys():
            message = self.get(key)
            if message is not None:
                yield key, message

    def __repr__(self) -> str:
        return f"Queue({str(self.path)!r})"

    def _request(self, data: bytes) -> Any:
        """A MailRequest whose Peer is the queue directory, as in Lamson 1.x.

        A Maildir file has no envelope: From and To come from the headers
        (see :class:`lamson.mail.MailRequest`).
        """
        from lamson.mail import MailRequest  # the mail model is optional for raw use

        return MailRequest(Peer=str(self.path), From=None, To=None, Data=data)
