"""Which workers are alive: unique worker ids and a short-lived key per worker.

A worker id names the application, the role, the host and the process, plus
a random part, so it never collides across hosts, applications or restarts
(``lamson.router.web1.4242.x7f3k2``). It names the worker's claims in the
spool (``cur/KEY,ID``) and its rq registration.

Every worker keeps ``NAMESPACE:alive:ID`` in Redis with a TTL of
``worker_ttl`` seconds (default ``TTL``), refreshed three times per TTL. A claim belongs to a dead
worker when its process on this host is gone (known at once), or when its
key has lapsed — but only once this worker has itself been beating for
two TTLs, so a Redis that restarted without the keys (or was
unreachable for a while) does not make every live worker look dead.

Each beat also scores the worker in ``NAMESPACE:alive-workers`` (a sorted
set: worker id -> time of its last beat), in the same round trip, so
:func:`live_workers` (``lamson status``, the exporter's ``/health``) finds
the candidates without scanning the keyspace, which may hold millions of
keys; the keys with their TTL still decide who is alive.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from lamson.connection import unavailable
from lamson.names import Names
from lamson.process import alive

TTL = 15
#: How long (in TTLs) this worker must have reached Redis without a break before it judges others.
SETTLE = 2.0
#: Index entries not refreshed for this long (seconds) are dropped by readers: a worker beats every
#: third of its TTL, so only long-dead workers (or clocks an hour apart) are ever dropped.
INDEX_HORIZON = 3600.0

_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def this_host() -> str:
    """This host's name in worker ids: ``LAMSON_HOSTNAME`` (containers, tests), else the host name."""
    name = os.environ.get("LAMSON_HOSTNAME") or socket.gethostname()
    return _UNSAFE.sub("-", name).strip("-") or "host"


def new_worker_id(names: Names, role: str) -> str:
    """``NAMESPACE.ROLE.HOST.PID.RANDOM``: unique, and readable in ``ls cur/`` and ``rq info``."""
    return f"{names.namespace}.{role}.{this_host()}.{os.getpid()}.{secrets.token_hex(3)}"


@dataclass(frozen=True)
class WorkerId:
    namespace: str
    role: str
    host: str
    pid: int

    @classmethod
    def parse(cls, worker: str) -> WorkerId | None:
        try:
            namespace, role, rest = worker.split(".", 2)
            host, pid, _ = rest.rsplit(".", 2)
            return cls(namespace, role, host, int(pid))
        except ValueError:
            return None


class Liveness:
    """This worker's liveness key, and the judgement of other workers' claims."""

    def __init__(self, conn: redis.Redis, names: Names, worker_id: str, ttl: float = TTL) -> None:
        self.conn = conn
        self.names = names
        self.worker_id = worker_id
        self.ttl = max(int(ttl), 1)
        self._beating_since: float | None = None

    def key(self, worker_id: str) -> str:
        return self.names.key("alive", worker_id)

    def beat(self) -> bool:
        """Refresh this worker's key and index entry; False (and the settling starts again) when Redis
        is unreachable."""
        try:
            with self.conn.pipeline(transaction=False) as pipe:
                pipe.set(self.key(self.worker_id), b"1", ex=self.ttl)
                pipe.zadd(index_key(self.names), {self.worker_id: time.time()})
                pipe.execute()
        except redis.RedisError as exc:
            if not unavailable(exc):
                raise
            self._beating_since = None
            return False
        if self._beating_since is None:
            self._beating_since = time.monotonic()
        return True

    def forget(self) -> None:
        """At a clean exit: this worker is gone now, not in TTL seconds."""
        try:
            with self.conn.pipeline(transaction=False) as pipe:
                pipe.delete(self.key(self.worker_id))
                pipe.zrem(index_key(self.names), self.worker_id)
                pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError):
            pass

    @property
    def settled(self) -> bool:
        return (self._beating_since is not None
                and time.monotonic() - self._beating_since >= SETTLE * self.ttl)

    def dead(self, workers: list[str], *, claimed_since: dict[str, float] | None = None) -> set[str]:
        """Which of ``workers`` are dead (never this one).

        On this host a worker whose process is gone is dead at once. Otherwise
        a worker is dead when its key is missing, this worker is settled, and
        its claim is older than the key's TTL.
        """
        verdict: set[str] = set()
        unknown: list[str] = []
        host = this_host()
        for worker in dict.fromkeys(workers):
            if worker == self.worker_id:
                continue
            wid = WorkerId.parse(worker)
            if wid is not None and wid.host == host and not alive(wid.pid):
                verdict.add(worker)
            else:
                unknown.append(worker)
        if unknown and self.settled:
            pipe = self.conn.pipeline(transaction=False)
            for worker in unknown:
                pipe.exists(self.key(worker))
            now = time.time()
            for worker, present in zip(unknown, pipe.execute(), strict=True):
                since = (claimed_since or {}).get(worker, 0.0)
                if not present and now - since > self.ttl:
                    verdict.add(worker)
        return verdict



def index_key(names: Names) -> str:
    """The sorted set of worker ids that have beaten (score: the time of the last beat)."""
    return names.key("alive-workers")


def indexed(conn: redis.Redis, index: str, key_of: Callable[[str], str],
            horizon: float = INDEX_HORIZON) -> list[tuple[str, Any]]:
    """(id, value) of every member of the sorted set ``index`` whose key ``key_of(id)`` is there.

    Two round trips whatever the size of the keyspace: the index (after
    dropping entries older than ``horizon``), then the keys' values. Raises
    RedisError.
    """
    with conn.pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(index, "-inf", time.time() - horizon)
        pipe.zrange(index, 0, -1)
        members = [m.decode() if isinstance(m, bytes) else str(m) for m in pipe.execute()[1]]
    if not members:
        return []
    values = conn.mget([key_of(m) for m in members])
    return sorted((m, v) for m, v in zip(members, values, strict=True) if v is not None)


def live_workers(conn: redis.Redis, names: Names) -> list[str]:
    """The ids of every worker of this application whose liveness key is there (raises RedisError).

    A worker's key exists from its first beat (once it has loaded the
    application) until it stops or misses its TTL; lamson.health counts them
    by role to say whether anything would route.
    """
    return [worker for worker, _ in indexed(conn, index_key(names), lambda w: names.key("alive", w))]
