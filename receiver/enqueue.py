"""Waking the router workers for spooled messages: batched, and never blocking on Redis.

The spool is the durable copy; the wake-up is only a pointer. So the
receiver answers 250 as soon as the message is on disk and hands its key
(and envelope sender) to this enqueuer, whose thread, for what arrived
together (up to ``queues.MAX_BATCH`` keys within ``window`` seconds), puts
each message in its sender's line (lamson.order) and sends one wake-up, in
one round trip: rq costs dozens of Redis commands per job, and a batch pays
them once. A lone message gets its own wake-up within the window. The window
(20 ms) is a trade: under load it makes batches of several messages (at 350
msg/s about 7; Redis commands per message fell from 22 to 17 with it, against
5 ms), and it adds at most 20 ms to a message's way through. When a wake-up
sent earlier is still waiting in the queue (every router is busy), nothing is
gained by sending the next one early: the batch then grows for up to
``busy_window`` (100 ms) and ``busy_batch`` keys, so a busy pipeline pays
rq's cost per job over more messages.

When Redis is unreachable the keys stay spooled and the sweeper wakes the
workers later (at once when Redis is back: lamson.sweeper's catch-up);
failures open a short circuit breaker (``pause``, 1 s) so a dead Redis does
not cost every batch a connect timeout, and new mail is enqueued again
within about a second of Redis answering.
"""

from __future__ import annotations

import logging
import queue as stdqueue
import threading
import time

import redis

from lamson import metrics, queues, rqcompat
from lamson.names import Names
from lamson.order import Lines

log = logging.getLogger("lamson.receiver")


class Enqueuer:
    """Collects spool keys and enqueues them in batches from a thread of its own."""

    def __init__(self, conn: redis.Redis, names: Names, *, timeout: int, group: str = "incoming",
                 pause: float = 1.0, window: float = 0.02, batch: int = queues.MAX_BATCH,
                 busy_window: float = 0.1, busy_batch: int = 4 * queues.MAX_BATCH) -> None:
        self.conn = conn
        self.names = names
        self.timeout = timeout
        self.group = group
        self.lines = Lines(conn, names, group)
        self.pause = pause
        self.window = window
        self.batch = batch
        self.busy_window = max(busy_window, window)
        self.busy_batch = max(busy_batch, batch)
        self._down_until = 0.0
        self._pending: stdqueue.SimpleQueue[tuple[str, str] | None] = stdqueue.SimpleQueue()  # None: stop
        self._thread = threading.Thread(target=self._run, name="lamson-enqueue", daemon=True)
        self._thread.start()

    def __call__(self, key: str, sender: str = "") -> bool:
        """Hand over ``key`` (sent by ``sender``); False when Redis is known to be down (the sweeper wakes)."""
        self._pending.put((key, sender))
        return time.monotonic() >= self._down_until

    def close(self, timeout: float = 10.0) -> None:
        """Enqueue what is pending, then stop the thread (at receiver shutdown)."""
        self._pending.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._pending.get(timeout=metrics.FLUSH_INTERVAL)
            except stdqueue.Empty:  # no mail for a while: write the refusals counted meanwhile
                if metrics.RECEIVER and time.monotonic() >= self._down_until:
                    metrics.RECEIVER.flush(self.conn, self.names)
                continue
            if first is None:
                return
            keys = [first]
            started = time.monotonic()
            stopping = self._collect(keys, self.batch, started + self.window)
            if not stopping and len(keys) < self.busy_batch and self._routers_busy():
                stopping = self._collect(keys, self.busy_batch, started + self.busy_window)
            self._flush(keys)

    def _collect(self, keys: list[tuple[str, str]], limit: int, deadline: float) -> bool:
        """Add what arrives until ``deadline`` or ``limit`` keys; True when told to stop meanwhile."""
        while len(keys) < limit:
            try:
                item = self._pending.get(timeout=max(0.0, deadline - time.monotonic()))
            except stdqueue.Empty:
                return False
            if item is None:
                return True
            keys.append(item)
        return False

    def _routers_busy(self) -> bool:
        """A wake-up sent earlier still waits in the queue: no router is free for another now."""
        if time.monotonic() < self._down_until:
            return False
        try:
            return rqcompat.length(self.conn, self.names.queue(self.group)) > 0
        except redis.RedisError:
            return False

    def _flush(self, entries: list[tuple[str, str]]) -> None:
        metrics.RECEIVER.add("accepted", len(entries))  # written with the wake-up (lamson.metrics)
        if time.monotonic() < self._down_until:
            return  # still spooled; the sweeper wakes the workers once Redis is back
        keys = [key for key, _ in entries]
        counted: dict[str, int] = {}
        try:
            with self.conn.pipeline() as pipe:
                # rq opens the MULTI, so its enqueue goes first; the lines join the same transaction.
                queues.wake_router(self.conn, self.names, self.group, keys, timeout=self.timeout, pipeline=pipe,
                                   senders=[sender for _, sender in entries])
                self.lines.add(entries, pipeline=pipe)
                counted, ours = metrics.RECEIVER.queue(pipe, self.names)
                metrics.execute(pipe, ours)  # a failed increment never fails the wake-up
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            metrics.RECEIVER.give_back(counted)
            log.warning("Redis unavailable (%s): %d message(s) stay spooled; the sweeper will enqueue them",
                        exc, len(keys))
            self._down_until = time.monotonic() + self.pause
        except Exception:
            metrics.RECEIVER.give_back(counted)
            log.exception("could not enqueue %d spooled message(s); the sweeper will", len(keys))
