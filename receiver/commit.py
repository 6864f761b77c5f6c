"""Group commit: the receiver's sessions share their fsyncs.

Every message must be on stable storage before its ``250``. Stored one by
one, each costs two fsyncs (the file, then the ``new/`` directory for its
rename) in a thread of its own, and on a 2-core machine that is a third of
the receiver's CPU under load. Here one thread takes whatever messages are
waiting when it comes round, writes each (``Spool.put(sync=False)``), makes
them durable together (``Spool.commit``: each file's fsync, then one fsync of
the directory), hands their keys to the enqueuer, and only then lets their
sessions answer. A message alone waits for nothing; under load the groups
grow by themselves while the previous one is being synced, so the cost per
message falls as the load rises.

A message whose write fails (disk full) fails alone. When the commit itself
fails, the group's messages are taken back out of the spool (claimed and
dropped) before every session in it answers ``451``: the clients keep them
and retry, so nothing is lost and, unless a worker had already taken one in
between, nothing is handled twice.
"""

from __future__ import annotations

import logging
import queue as stdqueue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from lamson.envelope import Envelope
from lamson.spool import Spool

log = logging.getLogger("lamson.receiver")

#: The most messages one commit takes (a bound on how long the first of them waits).
MAX_GROUP = 64

_Item = tuple[Envelope, bytes, "Future[tuple[str, bool]]"]


class GroupCommit:
    """Stores messages durably in groups, from a thread of its own."""

    def __init__(self, spool: Spool, enqueue: Callable[[str, str], bool], *, max_group: int = MAX_GROUP) -> None:
        self.spool = spool
        self.enqueue = enqueue
        self.max_group = max_group
        self._pending: stdqueue.SimpleQueue[_Item | None] = stdqueue.SimpleQueue()  # None: stop
        self._thread = threading.Thread(target=self._run, name="lamson-commit", daemon=True)
        self._thread.start()

    def submit(self, envelope: Envelope, data: bytes) -> Future[tuple[str, bool]]:
        """Store a message; the future gives ``(spool key, enqueued)`` once it is durable, or the error."""
        done: Future[tuple[str, bool]] = Future()
        self._pending.put((envelope, data, done))
        return done

    def close(self, timeout: float = 10.0) -> None:
        """Commit what was submitted, then stop the thread (at receiver shutdown)."""
        self._pending.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._pending.get()
            if first is None:
                return
            group = [first]
            stopping = False
            while len(group) < self.max_group:
                try:
                    item = self._pending.get_nowait()
                except stdqueue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            try:
                self._commit(group)
            except Exception as exc:  # never leave a session waiting
                log.exception("group commit failed")
                for _, _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            if stopping:
                return

    def _commit(self, group: list[_Item]) -> None:
        stored: list[tuple[str, Envelope, Future[tuple[str, bool]]]] = []
        for envelope, data, done in group:
            try:
                stored.append((self.spool.put(envelope, data, sync=False), envelope, done))
            except Exception as exc:  # this message only: the session answers 451
                done.set_exception(exc)
        if not stored:
            return
        try:
            self.spool.commit([key for key, _, _ in stored])
        except Exception as exc:
            log.error("could not make %d message(s) durable: %s; taking them back", len(stored), exc)
            for key, _, done in stored:
                self._take_back(key)
                done.set_exception(exc)
            return
        for key, envelope, done in stored:
            done.set_result((key, self.enqueue(key, envelope.mail_from)))

    def _take_back(self, key: str) -> None:
        """Remove a message whose commit failed (its session answers 451, so its client retries it)."""
        try:
            if self.spool.claim(key, "receiver-commit") is not None:
                self.spool.finish(key, "receiver-commit")
        except Exception as exc:
            log.error("could not take back %s after a failed commit (it may be handled and retried): %s",
                      key, exc)
