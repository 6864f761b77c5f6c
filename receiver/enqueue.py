"""Telling the router workers about a spooled message, without blocking on a dead Redis.

The spool is the durable copy; the routing job is only a pointer. So when
Redis is unreachable the receiver still answers 250 (Maildir spool) and the
sweeper enqueues the message later. To keep a dead Redis from costing every
message a connect timeout, failures open a short circuit breaker.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from lamson import queues

log = logging.getLogger("lamson.receiver")


class Enqueuer:
    """Enqueue routing jobs; skip Redis for ``pause`` seconds after a failure."""

    def __init__(self, conn: redis.Redis, *, timeout: int, retries: list[int], pause: float = 2.0) -> None:
        self.conn = conn
        self.timeout = timeout
        self.retries = retries
        self.pause = pause
        self._down_until = 0.0
        self._lock = threading.Lock()

    def __call__(self, key: str, queue: str = queues.INCOMING) -> bool:
        """Enqueue the routing job for ``key``; False if Redis is down (the sweeper will do it)."""
        if time.monotonic() < self._down_until:
            return False
        try:
            queues.enqueue_route(self.conn, key, queue=queue, timeout=self.timeout, retries=self.retries)
            return True
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            with self._lock:
                if time.monotonic() >= self._down_until:
                    log.warning("Redis unavailable (%s): %s stays spooled; the sweeper will enqueue it", exc, key)
                self._down_until = time.monotonic() + self.pause
            return False
