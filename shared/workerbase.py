"""The worker process start-up that router, relay and queue workers share, written once.

Settings, Redis, the worker id, the :class:`~lamson.context.Context` jobs
read, the liveness beat and sweeps (:mod:`lamson.sweeper`), and rq's
``SimpleWorker`` loop (no fork per job: forking costs about four times the
throughput, see DESIGN.md) on JSON wake-ups.
"""

from __future__ import annotations

import logging
import os
import time
from types import ModuleType
from typing import Any

import redis
from rq import SimpleWorker

from lamson import context, rqcompat, sweeper
from lamson.connection import connect
from lamson.liveness import Liveness, new_worker_id
from lamson.names import names_for
from lamson.redis_check import persistence_problems
from lamson.settings import DEFAULTS

log = logging.getLogger("lamson.workers")

#: rq's worker registration lives WORKER_TTL + 60 s after its last heartbeat; dead workers
#: are unregistered sooner by the sweeper (lamson.liveness tells who is dead).
WORKER_TTL = 20
MAINTENANCE_INTERVAL = 30


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
    """rq's SimpleWorker with fewer Redis round trips per job.

    rq sends a worker heartbeat (HSET + two EXPIREs, a round trip) several
    times per job. The registration lives ``worker_ttl + 60`` seconds, so a
    heartbeat sent less than ``HEARTBEAT_EVERY`` seconds after the last one
    tells nobody anything new; heartbeats riding on a pipeline cost no round
    trip and are always sent.
    """

    HEARTBEAT_EVERY = 5.0

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is None and timeout is None:
            now = time.monotonic()
            if now - getattr(self, "_lamson_beat", 0.0) < self.HEARTBEAT_EVERY:
                return
            self._lamson_beat = now
        super().heartbeat(timeout, pipeline)


def build_context(settings: ModuleType, role: str, conn: redis.Redis | None = None) -> context.Context:
    """The process's Context (installed), with a fresh worker id and the outbox open."""
    conn = conn if conn is not None else connect(settings.redis_url)
    names = names_for(settings)
    ctx = context.Context(settings=settings, conn=conn, names=names, worker_id=new_worker_id(names, role))
    ctx.outbox = ctx.spool("outgoing")
    context.install(ctx)
    return ctx


def work(ctx: context.Context, groups: list[str], *, burst: bool = False, scheduler: bool = True) -> int:
    """Beat, sweep once, then run rq's loop on the groups' queues until stopped."""
    for problem in startup_problems(ctx.conn):
        log.warning("WARNING: %s", problem)
    ttl = float(getattr(ctx.settings, "worker_ttl", DEFAULTS["worker_ttl"]))
    liveness = Liveness(ctx.conn, ctx.names, ctx.worker_id, ttl=ttl)
    liveness.beat()
    keeper = sweeper.Housekeeper(ctx, liveness, groups, interval=float(ctx.settings.sweep_interval),
                                 grace=float(ctx.settings.sweep_grace),
                                 beat=min(ttl / 3, float(ctx.settings.sweep_interval)))
    try:
        keeper.sweep_all()  # a restarted worker's own dead predecessor is on this host: its claims come back now
    except Exception as exc:  # Redis down at start: rq's loop waits for it; the thread sweeps later
        log.warning("initial sweep skipped: %s", exc)
    keeper.start()
    worker = LamsonWorker(
        [rqcompat.queue(ctx.conn, ctx.names.queue(g)) for g in groups],
        connection=ctx.conn,
        name=ctx.worker_id,
        worker_ttl=WORKER_TTL,
        maintenance_interval=MAINTENANCE_INTERVAL,
        default_result_ttl=rqcompat.RESULT_TTL,
        serializer=rqcompat.SERIALIZER,
        job_class=rqcompat.WakeUp,  # runs Lamson's job functions only
    )
    log.info("worker %s on %s", ctx.worker_id, ", ".join(ctx.names.queue(g) for g in groups))
    try:
        worker.work(burst=burst, with_scheduler=scheduler, logging_level=rq_log_level())
    finally:
        keeper.stop()
        liveness.forget()
    return 0
