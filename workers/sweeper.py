"""The sweeper: no spooled message is left without a job.

A message can sit in the spool with no routing job when the receiver died
between spooling and enqueueing, when Redis was down at that moment, when a
job stepped aside for a busy conversation, or when a worker died mid-job.
Every worker runs a sweep at start and then periodically; a Redis lock
makes one sweep run at a time across all processes and hosts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import redis
from rq.registry import StartedJobRegistry

from lamson import queues
from lamson.spool import Spool

log = logging.getLogger("lamson.sweeper")

LOCK_NAME = "lamson:sweeper"


def sweep(spool: Spool, conn: redis.Redis, *, grace: float, timeout: int, retries: list[int],
          watch_queues: Iterable[str] = (queues.INCOMING,)) -> int:
    """One pass; returns how many messages were (re-)enqueued. Does nothing if another sweep runs."""
    lock = conn.lock(LOCK_NAME, timeout=300, blocking=False)
    if not lock.acquire(blocking=False):
        return 0
    try:
        for name in watch_queues:
            # Jobs of workers that died: retried (or failed) now rather than at rq's next maintenance.
            StartedJobRegistry(name, connection=conn).cleanup()
        removed = spool.cleanup()
        if removed:
            log.info("removed %d stale partial file(s) from the spool's tmp/", removed)
        keys = spool.keys(older_than=grace)
        if not keys:
            return 0
        # No live job (none, or one that finished without removing the message because it
        # stepped aside for a busy conversation): enqueue. Queued, started, scheduled or failed: leave it.
        orphans = [key for key, live in zip(keys, queues.live_jobs(conn, keys), strict=True) if not live]
        if orphans:
            conn.hdel(queues.ROUTING_INDEX, *orphans)
        by_queue: dict[str, list[str]] = {}
        for key in orphans:
            try:
                spooled = spool.get(key)
            except Exception as exc:  # an unreadable record must not stop the sweep for every other message
                log.error("spooled %s cannot be read (%s): enqueued so that its failure shows in rq", key, exc)
                queue = queues.INCOMING
            else:
                if spooled is None:
                    continue
                queue = spooled.envelope.queue
            by_queue.setdefault(queue, []).append(key)
        enqueued = 0
        for queue, found in by_queue.items():
            # A backlog (Redis was down) goes back in batches, as the receiver would have sent it.
            for start in range(0, len(found), queues.MAX_BATCH):
                batch = found[start:start + queues.MAX_BATCH]
                queues.enqueue_routes(conn, batch, queue=queue, timeout=timeout, retries=retries)
                enqueued += len(batch)
        if enqueued:
            log.info("enqueued %d spooled message(s) that had no job", enqueued)
        return enqueued
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            pass


class SweeperThread(threading.Thread):
    """Runs ``sweep`` every ``interval`` seconds until stopped; errors are logged, never fatal."""

    def __init__(self, interval: float, **kwargs: object) -> None:
        super().__init__(name="lamson-sweeper", daemon=True)
        self.interval = interval
        self.kwargs = kwargs
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                sweep(**self.kwargs)  # type: ignore[arg-type]
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("sweep skipped: Redis unavailable (%s)", exc)
            except Exception:
                log.exception("sweep failed")

    def stop(self) -> None:
        self.stopped.set()
