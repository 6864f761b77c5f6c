"""Conversation locks: one conversation runs in one place at a time.

``Router.deliver`` asks for every lock a message needs at once, through
:meth:`hold`; the names are taken in sorted order (so two messages needing
the same pair cannot deadlock) within one bounded wait. When the wait runs
out, :class:`ConversationBusy` is raised before any state function ran: the
routing job leaves the message in the spool and it is routed again later.

``LocalLocks`` serialise threads of one process (unit tests, the default).
``RedisLocks`` serialise every process and host sharing a Redis: each is a
redis-py ``Lock`` with an expiry, so a holder that dies frees it after
``timeout`` seconds, and a watchdog thread extends the held locks while a
long state function runs.

Inside :meth:`RedisLocks.keeping` (a routing job) the locks one message took
stay held for the next message that needs the same ones, which is the next
message of the same sender in a job that follows the sender's line; they are
released as soon as a message needs others (so a worker holds one sender's
locks at a time and two workers cannot deadlock), when a message fails, and
when the job ends. A burst from one sender pays for its locks once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, cast

import redis
from redis.exceptions import LockError

LOG = logging.getLogger(__name__)


class ConversationBusy(Exception):
    """A conversation lock could not be taken in time; route this message later."""

    def __init__(self, name: str, waited: float) -> None:
        super().__init__(f"conversation lock {name!r} still held after {waited:.1f}s")
        self.name = name
        self.waited = waited


class Locks(Protocol):
    """What the router needs of a lock manager."""

    def hold(self, names: Sequence[str]) -> AbstractContextManager[None]: ...


class LocalLocks:
    """In-process locks keyed by name; entries vanish when nobody uses them."""

    def __init__(self, wait: float = 10.0) -> None:
        self.wait = wait
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    def _ref(self, name: str) -> threading.Lock:
        with self._guard:
            lock, users = self._locks.get(name, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._locks[name] = (lock, users + 1)
            return lock

    def _unref(self, name: str) -> None:
        with self._guard:
            lock, users = self._locks[name]
            if users <= 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)

    @contextmanager
    def hold(self, names: Sequence[str]) -> Iterator[None]:
        ordered = sorted(set(names))
        deadline = time.monotonic() + self.wait
        held: list[tuple[str, threading.Lock]] = []
        try:
            for name in ordered:
                lock = self._ref(name)
                if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    self._unref(name)
                    raise ConversationBusy(name, self.wait)
                held.append((name, lock))
            yield
        finally:
            for name, lock in reversed(held):
                lock.release()
                self._unref(name)

    def __repr__(self) -> str:
        return f"LocalLocks(wait={self.wait})"


class Watchdog:
    """One thread per process that keeps extending every held conversation lock.

    A thread started and joined per message would cost more than the lock
    itself; this one sleeps ``interval`` seconds between passes and only
    touches Redis for locks that are held at that moment.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.interval = timeout / 3
        self._held: dict[int, redis.lock.Lock] = {}
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, locks: Sequence[redis.lock.Lock]) -> None:
        with self._guard:
            for lock in locks:
                self._held[id(lock)] = lock
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="lamson-lock-watchdog")
                self._thread.start()

    def discard(self, locks: Sequence[redis.lock.Lock]) -> None:
        with self._guard:
            for lock in locks:
                self._held.pop(id(lock), None)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._guard:
                held = list(self._held.values())
            for lock in held:
                try:
                    lock.extend(self.timeout, replace_ttl=True)
                except LockError:
                    # Released between the snapshot and now, or lost to expiry.
                    with self._guard:
                        still_held = id(lock) in self._held
                    if still_held:
                        LOG.error("could not extend conversation lock %r (lost to expiry?)", lock.name)
                except redis.RedisError:
                    LOG.exception("Redis error extending conversation lock %r", lock.name)


class RedisLocks:
    """Locks shared by every process on one Redis, each with an expiry."""

    def __init__(self, conn: redis.Redis, *, prefix: str = "lamson:", timeout: float = 30.0,
                 wait: float = 10.0, poll: float = 0.01) -> None:
        if timeout <= 0:
            raise ValueError("lock timeout must be positive: a lock without expiry outlives a dead holder")
        self.conn = conn
        self.prefix = prefix + "lock:"
        self.timeout = timeout
        self.wait = wait
        self.poll = poll
        self.watchdog = Watchdog(timeout)
        self._local = threading.local()  # per thread: keeping depth and the kept locks by name

    def _kept(self) -> dict[str, redis.lock.Lock]:
        kept: dict[str, redis.lock.Lock] | None = getattr(self._local, "kept", None)
        if kept is None:
            kept = self._local.kept = {}
        return kept

    @contextmanager
    def keeping(self) -> Iterator[None]:
        """Keep each message's locks for the next message that needs the same ones; release them at the end."""
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1
            if not self._local.depth:
                self.release_kept()

    def release_kept(self) -> None:
        """Release the locks kept from earlier messages (nothing kept: nothing to do)."""
        kept = self._kept()
        if kept:
            locks = list(kept.values())
            kept.clear()
            self._release(locks)

    def _release(self, held: Sequence[redis.lock.Lock]) -> None:
        self.watchdog.discard(held)
        for lock in reversed(held):
            try:
                lock.release()
            except LockError:
                LOG.error("conversation lock %r expired before release: it was held longer than "
                          "lock_timeout=%ss without being extended", lock.name, self.timeout)
            except redis.RedisError as exc:  # it expires by itself after lock_timeout
                LOG.warning("could not release conversation lock %r: %s", lock.name, exc)

    def lock(self, name: str) -> redis.lock.Lock:
        # thread_local=False: the watchdog thread extends a lock the main thread took.
        lock = self.conn.lock(self.prefix + name, timeout=self.timeout, sleep=self.poll, thread_local=False)
        return cast(redis.lock.Lock, lock)  # redis-py's lock() has no return annotation; no lock_class: a Lock

    @contextmanager
    def hold(self, names: Sequence[str]) -> Iterator[None]:
        ordered = sorted(set(names))
        kept = self._kept()
        if kept and set(ordered) == kept.keys():  # the same conversation as the last message: still ours
            held = [kept[name] for name in ordered]
            kept.clear()
        else:
            self.release_kept()  # one sender's locks at a time: never wait while holding others
            held = self._acquire(ordered)
        failed = True
        try:
            yield
            failed = False
        finally:
            if failed or not getattr(self._local, "depth", 0):
                self._release(held)
            else:
                kept.update(zip(ordered, held, strict=True))

    def _acquire(self, ordered: Sequence[str]) -> list[redis.lock.Lock]:
        started = time.monotonic()
        deadline = started + self.wait
        held: list[redis.lock.Lock] = []
        try:
            for name in ordered:
                lock = self.lock(name)
                if not lock.acquire(blocking=True, blocking_timeout=max(0.0, deadline - time.monotonic())):
                    raise ConversationBusy(name, time.monotonic() - started)
                held.append(lock)
        except BaseException:
            self._release(held)
            raise
        self.watchdog.add(held)
        return held

    def __repr__(self) -> str:
        return f"RedisLocks(timeout={self.timeout}, wait={self.wait})"
