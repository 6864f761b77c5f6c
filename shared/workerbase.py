"""The worker process start-up that router, relay and queue workers share, written once.

The process's :class:`~lamson.runtime.Runtime` (built by
:func:`lamson.runtime.build_runtime`), the liveness beat and sweeps
(:mod:`lamson.sweeper`), and rq's ``SimpleWorker`` loop (no fork per job:
forking costs about four times the throughput, see docs/design.md) on JSON
wake-ups, each job handed the runtime.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
import time
from types import ModuleType
from typing import Any

import redis

from lamson import rqcompat, sweeper
from lamson.connection import unavailable
from lamson.liveness import Liveness
from lamson.redis_check import persistence_problems
from lamson.runtime import Runtime, build_runtime
from lamson.typed_settings import Settings

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


def build_context(settings: ModuleType, role: str, conn: redis.Redis | None = None) -> Runtime:
    """The process's runtime (:func:`lamson.runtime.build_runtime`): its earlier name."""
    return build_runtime(settings, role, conn=conn)


def work(ctx: Runtime, groups: list[str], *, burst: bool = False, scheduler: bool = True) -> int:
    """Beat, sweep once, then run rq's loop on the groups' queues until stopped."""
    for problem in startup_problems(ctx.conn):
        log.warning("WARNING: %s", problem)
    config = ctx.config
    ttl = float(config.worker_ttl)
    liveness = Liveness(ctx.conn, ctx.names, ctx.worker_id, ttl=ttl)
    liveness.beat()
    keeper = sweeper.Housekeeper(ctx, liveness, groups, interval=float(config.sweep_interval),
                                 grace=float(config.sweep_grace), beat=min(ttl / 3, float(config.sweep_interval)))
    try:
        keeper.sweep_all()  # a restarted worker's own dead predecessor is on this host: its claims come back now
    except Exception as exc:  # Redis down at start: rq's loop waits for it; the thread sweeps later
        log.warning("initial sweep skipped: %s", exc)
    keeper.start()
    _preload(groups)
    log.info("worker %s on %s", ctx.worker_id, ", ".join(ctx.names.queue(g) for g in groups))
    try:
        return _work_until_stopped(ctx, groups, burst=burst, scheduler=scheduler, keeper=keeper)
    finally:
        keeper.stop()
        liveness.forget()


def lower_priority(settings: Any) -> None:
    """Yield the CPU to the receiver: its clients wait for each reply, a worker only has a backlog.

    Called once, first thing after the settings load in ``lamson worker`` and
    ``lamson relay`` (os.nice adds up): when supervisord starts every program
    at once, the receiver's start-up (imports, then listening) gets the CPU
    before the workers' heavier one, so it greets sooner.
    """
    nice = int(Settings.of(settings).worker_nice or 0)
    if nice > 0:
        try:
            os.nice(nice)
        except OSError as exc:
            log.warning("could not lower this worker's priority by %d: %s", nice, exc)


def _preload(groups: list[str]) -> None:
    """Import the job functions now: rq imports a job's function when the first job runs, and that
    costs a quarter of a second of CPU in the middle of the first burst of mail."""
    from lamson import queues

    for func in sorted({queues.SEND_JOB if group == "outgoing" else queues.ROUTE_JOB for group in groups}):
        importlib.import_module(func.rpartition(".")[0])


def _new_worker(ctx: Runtime, groups: list[str]) -> rqcompat.Worker:
    def stopping() -> None:
        ctx.stopping = True

    return rqcompat.Worker(
        [rqcompat.queue(ctx.conn, ctx.names.queue(g)) for g in groups],
        connection=ctx.conn,
        name=ctx.worker_id,
        worker_ttl=WORKER_TTL,
        maintenance_interval=MAINTENANCE_INTERVAL,
        default_result_ttl=rqcompat.RESULT_TTL,
        serializer=rqcompat.SERIALIZER,
        runtime=ctx,  # handed to each job (rqcompat.WakeUp runs Lamson's job functions only)
        on_stop=stopping,
        reconnect_every=PROBE_EVERY,
    )


def _work_until_stopped(ctx: Runtime, groups: list[str], *, burst: bool, scheduler: bool,
                        keeper: sweeper.Housekeeper | None = None) -> int:
    """rq's loop, started again whenever Redis went away under it, until a signal stops the process.

    rq's worker leaves its loop when Redis vanishes in the middle of a job.
    Exiting would make supervisord restart the process a few times and then
    give up (FATAL) while Redis is still down; so the process waits instead:
    it logs the cause once a minute, tries Redis every :data:`PROBE_EVERY`
    seconds (no growing backoff: the backlog that built up meanwhile must
    start draining as soon as Redis answers), and once Redis answers puts back
    what it held (no attempt charged: Redis's death is not the message's
    fault), has ``keeper`` sweep at once, and runs rq's loop again. An idle
    worker waits inside rq's own loop, which retries on its own; it is made
    to retry at the same pace instead of rq's backoff of up to 60 s, and
    rq's complaint about it is logged once a minute, not at every try.
    """
    stop = threading.Event()
    while True:
        worker = _new_worker(ctx, groups)
        try:
            worker.work(burst=burst, with_scheduler=scheduler, logging_level=rq_log_level())
            return 0
        except redis.RedisError as exc:
            if burst or not unavailable(exc):
                raise
            if ctx.stopping:  # told to stop while Redis was away (rq's goodbye needs Redis): just stop
                log.warning("stopping with Redis unavailable (%s)", exc)
                return 0
            log.warning("Redis unavailable (%s): this worker waits for it instead of exiting", exc)
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if not wait_for_redis(ctx.conn, stop, probe=ctx.names.key("probe", ctx.worker_id)):
                return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        released = release_own_claims(ctx, groups)
        try:
            rqcompat.forget_worker(ctx.conn, ctx.worker_id)  # the registration rq's loop left behind
        except Exception as exc:
            log.debug("could not unregister the previous loop: %s", exc)
        log.warning("Redis is back: worker %s resumes (%d claimed message(s) put back to wait)",
                    ctx.worker_id, released)
        if keeper is not None:  # the mail accepted meanwhile has no wake-up: sweep now, not at the next interval
            keeper.nudge()


#: Seconds between two tries of an unavailable Redis (the probe below, rq's idle loop, the housekeeper).
PROBE_EVERY = sweeper.PROBE_EVERY
#: How often a worker waiting for Redis says so (the first time at once).
REDIS_DOWN_LOG_EVERY = 60.0


def wait_for_redis(conn: redis.Redis, stop: threading.Event, *, probe: str, every: float = PROBE_EVERY) -> bool:
    """Write a probe key until Redis takes it (True) or ``stop`` is set (False); the cause logged once a
    minute. A write, not a ping: a Redis whose disk or memory is full answers pings but refuses writes.

    A try every ``every`` seconds, never slower: a longer backoff only delays the
    drain of the backlog that built up meanwhile (a 30 s cap made it wait up to
    30 s after Redis was back), and a failed try costs a refused connection.
    """
    logged = time.monotonic()
    while not stop.is_set():
        started = time.monotonic()
        try:
            conn.set(probe, b"1", ex=60)
            return True
        except redis.RedisError as exc:
            if not unavailable(exc):
                raise
            if time.monotonic() - logged >= REDIS_DOWN_LOG_EVERY:
                log.warning("Redis still unavailable (%s); waiting", exc)
                logged = time.monotonic()
        # (redis-py may retry inside one try: the pause is what is left of the interval)
        stop.wait(max(0.0, every - (time.monotonic() - started)))
    return False


def release_own_claims(ctx: Runtime, groups: list[str]) -> int:
    """Put back what this process claimed and did not finish (its job was cut off with Redis)."""
    from lamson import queues

    released = 0
    for group in dict.fromkeys([*groups, "outgoing"]):
        spool = ctx.spool(group)
        mine = [c for c in spool.claims() if c.worker == ctx.worker_id]
        keys = []
        for claim in mine:
            got = spool.get(claim.key)
            if got is not None and spool.release(got, ctx.worker_id):
                keys.append(claim.key)
        released += len(keys)
        for batch in queues.chunks(keys):
            try:
                if group == "outgoing":
                    queues.wake_relay(ctx.conn, ctx.names, batch)
                else:
                    queues.wake_router(ctx.conn, ctx.names, group, batch)
            except Exception as exc:  # the sweep wakes them
                log.debug("no wake-up for %d released message(s): %s", len(batch), exc)
    return released
