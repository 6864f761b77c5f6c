"""What the router and relay worker processes share: rq settings, names, start-up checks."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import redis
from rq import SimpleWorker

from lamson.redis_check import persistence_problems

#: rq worker settings chosen so that a killed worker's job runs again within
#: about two minutes: a SimpleWorker job's heartbeat lapses job_timeout + 60 s
#: after it started, and the sweeper cleans rq's started registries every
#: sweep_interval (rq's own maintenance every MAINTENANCE_INTERVAL).
WORKER_TTL = 40
MAINTENANCE_INTERVAL = 30


def worker_name(prefix: str, name: str | None) -> str:
    """A readable, unique name for ``rq info``: prefix, host, pid."""
    return name or f"{prefix}.{socket.gethostname()}.{os.getpid()}"


def rq_log_level() -> str:
    """rq logs a line per job at INFO; at hundreds of jobs a second that is noise, so WARNING."""
    return os.environ.get("LAMSON_RQ_LOG_LEVEL", "WARNING")


def startup_problems(conn: redis.Redis) -> list[str]:
    """Persistence problems of this Redis, or why they could not be checked."""
    try:
        return persistence_problems(conn)
    except Exception as exc:
        return [f"cannot check Redis persistence: {exc}"]


class LamsonWorker(SimpleWorker):
    """rq's SimpleWorker (no fork per job) with fewer Redis round trips per job.

    rq sends a worker heartbeat (HSET + two EXPIREs, a round trip) several
    times per job. The worker's registration lives ``worker_ttl + 60`` seconds,
    so a heartbeat sent less than ``HEARTBEAT_EVERY`` seconds after the last one
    tells nobody anything new; heartbeats riding on a pipeline cost no round
    trip and are always sent. At hundreds of jobs a second this is a few
    percent of the worker's time, for the same guarantees.
    """

    HEARTBEAT_EVERY = 5.0

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is None and timeout is None:
            now = time.monotonic()
            if now - getattr(self, "_lamson_beat", 0.0) < self.HEARTBEAT_EVERY:
                return
            self._lamson_beat = now
        super().heartbeat(timeout, pipeline)
