"""The sweeper: dead workers' claims come back, and nothing waits without a wake-up.

Every worker process runs one (:class:`Housekeeper`): it refreshes the
worker's liveness key every few seconds and, every ``sweep_interval``, for
each worker group the process serves:

* returns the claims of dead workers to ``new/`` (one more attempt each) and
  unregisters those workers from rq, so ``rq info`` stops listing them;
* removes partial files left in ``tmp/`` by writers that died;
* wakes workers for messages that are due and have waited ``sweep_grace``
  seconds, if the group's rq queue is empty: a wake-up was lost (the
  receiver died before sending it, Redis was down), or a retry fell due.
  While the queue holds jobs the workers are busy with a backlog, and
  nothing is added, so a backlog is never doubled.

A short Redis lock (``NAMESPACE:sweeper:GROUP``, expiring after two
intervals) keeps sweeps of one group from overlapping; a sweep that runs
twice anyway only sends duplicate wake-ups, which do nothing.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from lamson import queues, rqcompat
from lamson.context import Context
from lamson.liveness import Liveness
from lamson.settings import DEFAULTS

log = logging.getLogger("lamson.sweeper")


def sweep(ctx: Context, group: str, liveness: Liveness, *, grace: float, interval: float) -> int:
    """One pass over one group; returns how many messages were recovered or woken."""
    lock = ctx.conn.lock(ctx.names.key("sweeper", group), timeout=max(int(2 * interval), 5), blocking=False)
    if not lock.acquire(blocking=False):
        return 0
    try:
        spool = ctx.spool(group)
        claims = spool.claims()
        dead = liveness.dead([c.worker for c in claims], claimed_since={c.worker: c.since for c in claims})
        recovered = spool.recover(lambda claim: claim.worker in dead) if dead else []
        for worker in dead:
            rqcompat.forget_worker(ctx.conn, worker)
        if recovered:
            log.warning("%s: %d message(s) claimed by dead worker(s) %s are waiting again",
                        group, len(recovered), ", ".join(sorted(dead)))
        removed = spool.cleanup()
        if removed:
            log.info("%s: removed %d partial file(s) left in tmp/ by dead writers", group, removed)
        queue_name = ctx.names.queue(group)
        keys = list(recovered)
        if rqcompat.length(ctx.conn, queue_name) == 0:
            keys += [key for key in spool.waiting(older_than=grace) if key not in recovered]
        if not keys:
            return 0
        wake(ctx, group, keys)
        log.info("%s: woke workers for %d waiting message(s)", group, len(keys))
        return len(keys)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            pass


def wake(ctx: Context, group: str, keys: list[str]) -> None:
    """Put waiting messages in their senders' lines and send wake-ups in batches."""
    spool = ctx.spool(group)
    entries = []
    for key in keys:
        try:
            spooled = spool.get(key)
        except Exception as exc:  # an unreadable record must not stop the sweep of every other message
            log.error("%s: spooled %s cannot be read (%s); the worker woken for it parks it", group, key, exc)
            continue
        if spooled is not None:
            entries.append((key, spooled.envelope.mail_from))
    if group != "outgoing" and not group.startswith("q-"):  # replies and Maildir queues keep no order
        ctx.lines(group).add(entries)
    for batch in queues.chunks(keys):
        if group == "outgoing":
            queues.wake_relay(ctx.conn, ctx.names, batch)
        else:
            queues.wake_router(ctx.conn, ctx.names, group, batch,
                               timeout=int(getattr(ctx.settings, "job_timeout", DEFAULTS["job_timeout"])))


def forget_dead_workers(ctx: Context, liveness: Liveness) -> list[str]:
    """Unregister from rq this application's workers that are dead (idle ones have no claims to find)."""
    names = rqcompat.registered_workers(ctx.conn, ctx.names.namespace + ".")
    dead = sorted(liveness.dead(names))
    for name in dead:
        rqcompat.forget_worker(ctx.conn, name)
    return dead


class Housekeeper(threading.Thread):
    """Liveness beats and sweeps for one worker process; errors are logged, never fatal."""

    def __init__(self, ctx: Context, liveness: Liveness, groups: list[str], *, interval: float,
                 grace: float, beat: float) -> None:
        super().__init__(name="lamson-housekeeper", daemon=True)
        self.ctx = ctx
        self.liveness = liveness
        self.groups = groups
        self.interval = interval
        self.grace = grace
        self.beat = beat
        self.stopped = threading.Event()
        self._last_sweep = 0.0
        self._redis_down_logged = 0.0

    def run(self) -> None:
        while not self.stopped.wait(self.beat):
            try:
                self.tick()
            except Exception:  # never let the housekeeping thread die: takeover and wake-ups depend on it
                log.exception("housekeeping failed; trying again in %.0fs", self.beat)

    def tick(self, force: bool = False) -> None:
        if not self.liveness.beat():
            now = time.monotonic()
            if now - self._redis_down_logged > 60:
                log.warning("Redis unavailable: sweeps wait until it is back")
                self._redis_down_logged = now
            return
        if not force and time.monotonic() - self._last_sweep < self.interval:
            return
        self._last_sweep = time.monotonic()
        self.sweep_all()

    def sweep_all(self) -> int:
        done = 0
        for group in self.groups:
            try:
                done += sweep(self.ctx, group, self.liveness, grace=self.grace, interval=self.interval)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("sweep of %s skipped: Redis unavailable (%s)", group, exc)
            except Exception:
                log.exception("sweep of %s failed", group)
        try:
            forget_dead_workers(self.ctx, self.liveness)
        except Exception as exc:
            log.debug("could not tidy rq's worker registry: %s", exc)
        return done

    def stop(self) -> None:
        self.stopped.set()
