"""The sweeper: dead workers' claims come back, and nothing waits without a wake-up.

Every worker process runs one (:class:`Housekeeper`): it refreshes the
worker's liveness key every few seconds and, every ``sweep_interval``, for
each worker group the process serves:

* returns the claims of dead workers to ``new/`` (one more attempt each) and
  unregisters those workers from rq, so ``rq info`` stops listing them;
* removes partial files left in ``tmp/`` by writers that died;
* wakes workers for messages that are due and have waited ``sweep_grace``
  seconds with no worker on them, however many wake-ups the group's rq
  queue holds: a wake-up was lost (the receiver died before sending it,
  Redis was down when it was due, Redis restarted without it), or a retry
  fell due. A wake-up is only a pointer, so one too many costs a failed
  claim: the job skips a key that is already claimed or done. Still, so
  that a backlog is not woken again by every worker at every sweep, the
  waiting messages of a group are woken at most once per
  ``0.8 * sweep_interval`` across all workers (``NAMESPACE:sweeper:GROUP:woken``).

While Redis is unavailable the housekeeper tries it every :data:`PROBE_EVERY`
seconds, and the moment it answers again sweeps at once (a *catch-up*: every
due message, whatever its age, since none of the wake-ups of the outage was
sent), so the backlog starts draining within seconds of Redis's return
instead of at the next interval.

A short Redis lock (``NAMESPACE:sweeper:GROUP``, expiring after two
intervals) keeps sweeps of one group from overlapping; a sweep that runs
twice anyway only sends duplicate wake-ups, which do nothing.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from lamson import groups, queues, rqcompat
from lamson.connection import unavailable
from lamson.liveness import Liveness
from lamson.runtime import Runtime

log = logging.getLogger("lamson.sweeper")


def sweep(ctx: Runtime, group: str, liveness: Liveness, *, grace: float, interval: float,
          catch_up: bool = False) -> int:
    """One pass over one group; returns how many messages were recovered or woken.

    ``catch_up``: Redis has just come back, so every due message is woken,
    however recent (``grace`` is ignored), and whenever the group was last woken.
    """
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
        keys = list(recovered)
        # Not gated on the rq queue being empty: after an outage the queue holds the wake-ups sent
        # since Redis came back (and stale ones), never those of the mail accepted meanwhile.
        if _may_wake(ctx, group, interval, catch_up):
            due = spool.waiting(due=True, older_than=0.0 if catch_up else grace)  # (a retry waits for its time)
            keys += [key for key in due if key not in recovered]
        if not keys:
            return 0
        wake(ctx, group, keys)
        log.info("%s: woke workers for %d waiting message(s)%s", group, len(keys),
                 " (Redis is back)" if catch_up else "")
        return len(keys)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            pass


def _may_wake(ctx: Runtime, group: str, interval: float, catch_up: bool) -> bool:
    """Whether this sweep wakes the group's waiting messages: no other worker did in the last
    ``0.8 * interval`` (a catch-up always does, and says so for the others)."""
    marker = ctx.names.key("sweeper", group, "woken")
    window = max(int(interval * 800), 100)  # milliseconds
    if catch_up:
        ctx.conn.set(marker, b"1", px=window)
        return True
    return bool(ctx.conn.set(marker, b"1", px=window, nx=True))


def wake(ctx: Runtime, group: str, keys: list[str]) -> None:
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
    if groups.named(group).ordered:  # replies and Maildir queues keep no order
        ctx.lines(group).add(entries)
    timeout = ctx.config.job_timeout  # the typed settings the runtime keeps
    for batch in queues.chunks(keys):
        if group == "outgoing":
            queues.wake_relay(ctx.conn, ctx.names, batch)
        else:
            queues.wake_router(ctx.conn, ctx.names, group, batch,
                               timeout=timeout)


def forget_dead_workers(ctx: Runtime, liveness: Liveness) -> list[str]:
    """Unregister from rq this application's workers that are dead (idle ones have no claims to find)."""
    names = rqcompat.registered_workers(ctx.conn, ctx.names.namespace + ".")
    dead = sorted(liveness.dead(names))
    for name in dead:
        rqcompat.forget_worker(ctx.conn, name)
    return dead


#: Seconds between two tries of Redis while it is unavailable (the housekeeper's beat, and the
#: worker's own probe in lamson.workerbase): the backlog starts draining about this long after
#: Redis answers again. A try costs Redis one refused connection.
PROBE_EVERY = 1.0


class Housekeeper(threading.Thread):
    """Liveness beats and sweeps for one worker process; errors are logged, never fatal."""

    def __init__(self, ctx: Runtime, liveness: Liveness, groups: list[str], *, interval: float,
                 grace: float, beat: float) -> None:
        super().__init__(name="lamson-housekeeper", daemon=True)
        self.ctx = ctx
        self.liveness = liveness
        self.groups = groups
        self.interval = interval
        self.grace = grace
        self.beat = beat
        self.stopped = threading.Event()
        self._woken = threading.Event()  # stop() or nudge(): look now, not at the next beat
        self._last_sweep = 0.0
        self._redis_down_logged = 0.0
        self._redis_down = False
        self._catch_up = False

    def run(self) -> None:
        while not self.stopped.is_set():
            self._woken.wait(PROBE_EVERY if self._redis_down else self.beat)
            self._woken.clear()
            if self.stopped.is_set():
                return
            try:
                self.tick()
            except Exception:  # never let the housekeeping thread die: takeover and wake-ups depend on it
                log.exception("housekeeping failed; trying again in %.0fs", self.beat)

    def nudge(self) -> None:
        """Redis answers again (the worker found out first): beat and catch up now."""
        self._catch_up = True
        self._woken.set()

    def tick(self, force: bool = False) -> None:
        if not self.liveness.beat():
            now = time.monotonic()
            if now - self._redis_down_logged > 60:
                log.warning("Redis unavailable: sweeps wait until it is back")
                self._redis_down_logged = now
            self._redis_down = True
            return
        if self._redis_down or self._catch_up:  # back: what was accepted meanwhile has no wake-up
            self._redis_down = self._catch_up = False
            self._last_sweep = time.monotonic()
            self.sweep_all(catch_up=True)
            return
        if not force and time.monotonic() - self._last_sweep < self.interval:
            return
        self._last_sweep = time.monotonic()
        self.sweep_all()

    def sweep_all(self, catch_up: bool = False) -> int:
        """Sweep every group; ``catch_up`` right after Redis came back (see :func:`sweep`)."""
        done = 0
        for group in self.groups:
            try:
                done += sweep(self.ctx, group, self.liveness, grace=self.grace, interval=self.interval,
                              catch_up=catch_up)
            except Exception as exc:
                if not unavailable(exc):
                    log.exception("sweep of %s failed", group)
                    continue
                log.warning("sweep of %s skipped: Redis unavailable (%s)", group, exc)
                self._redis_down = True  # gone again: probe every second, catch up when it answers
        try:
            forget_dead_workers(self.ctx, self.liveness)
        except Exception as exc:
            log.debug("could not tidy rq's worker registry: %s", exc)
        return done

    def stop(self) -> None:
        self.stopped.set()
        self._woken.set()
