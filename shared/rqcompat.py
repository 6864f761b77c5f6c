"""Everything Lamson asks of rq, in one small module (docs/design.md, "rq, behind one module").

rq jobs here are wake-ups: JSON (the function's dotted name and a list of
spool keys), never pickles, so nothing written into Redis can become code in
a worker, and nothing about a message lives only in rq. What Lamson needs:
queues with the JSON serializer, enqueueing (now, in a pipeline, or after a
delay), a queue's length and its registries' counts (``lamson status``),
forgetting the registration of a worker that is known dead so ``rq info``
stops listing it, and the worker class that runs wake-ups (:class:`Worker`),
whose stop takes a second with every redis-py version the pins allow. No
other module of the package imports rq (tests/shared/test_rqcompat.py
checks the sources).

What Lamson uses of rq, and why. rq's documented API: ``Queue`` (with
``serializer=JSONSerializer``), ``enqueue_call``, ``enqueue_in``, ``count``,
``Queue.all`` and the failed/scheduled/started registries' ``count``;
``SimpleWorker`` with its constructor options (``job_class``, ``serializer``,
``worker_ttl``, ...) and ``work()``; ``Worker.all``, ``Worker.find_by_key``,
a worker's ``name``, ``key``, ``get_state()``, ``queue_names()``, ``get_current_job_id()``,
``successful_job_count``, ``failed_job_count`` and ``birth_date`` (:func:`workers`, as ``rq info``);
a ``Job`` subclass as ``job_class``, its ``id``, ``func_name``, ``func``, ``args``, ``kwargs``;
``NoSuchJobError``.
Not documented, each named by a contract test that fails with the name when
an upgrade changes it:

- ``Job.refresh()`` (overridden): rq reads every dequeued job through it; a
  hash rq cannot parse is deleted (``Job.key``) instead of ending the loop.
- ``Job.perform()`` (overridden): what the worker calls to run a job; a
  function Lamson never enqueues is refused (invariant 6).
- ``BaseWorker.request_stop(signum, frame)`` (overridden): rq's SIGTERM and
  SIGINT handler; the job in hand is told to stop after its message.
- ``BaseWorker.heartbeat(timeout, pipeline)`` (overridden): fewer round trips.
- ``BaseWorker.unsubscribe()`` (overridden), ``subscribe()``, the ``pubsub``
  and ``pubsub_thread`` attributes, and redis-py's ``PubSubWorkerThread.stop``:
  a stop that does not wait out redis-py 8.2's unbounded join.
- ``max_connection_wait_time`` and ``exponential_backoff_factor`` (class
  attributes of rq's idle loop): ``Worker(reconnect_every=)``.
- the ``rq.worker`` logger's "could not connect to Redis" line: let through
  once a minute.
- ``redis_worker_namespace_prefix`` (the worker key ``find_by_key`` needs)
  and ``register_death()``: :func:`forget_worker`.

rq has public ways it does not need: ``rq.command.send_shutdown_command``
(Lamson stops workers with signals, through supervisord) and
``rq.worker_registration.clean_worker_registry`` (it drops registrations
whose key has already expired; :func:`forget_worker` is for a worker known
dead whose key has not).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job as Job  # re-exported: what the enqueue functions return
from rq.serializers import JSONSerializer
from rq.worker import Worker as RqWorker

#: How long a finished wake-up stays in Redis. Not 0: rq deletes a job with result_ttl=0
#: through several extra round trips, while a short expiry costs nothing.
RESULT_TTL = 30
#: A wake-up that failed (its worker died) carries nothing to recover: keep it a day for ``rq info``.
FAILURE_TTL = 24 * 3600

SERIALIZER = JSONSerializer

log = logging.getLogger("lamson.workers")


class NotALamsonJob(Exception):
    """A job in a Lamson queue that names a function Lamson never enqueues."""


class WakeUp(Job):
    """rq's Job, run only when it names one of Lamson's job functions.

    JSON alone does not make a job harmless: rq imports and calls whatever
    dotted name the job's hash holds (``os.system`` with a shell command is
    valid JSON). Workers use this class, so a job written into Redis by anyone
    but Lamson fails before anything is imported: rq logs it and keeps it in the
    queue's failed registry, and the worker goes on (docs/design.md, invariant 6).
    """

    def refresh(self) -> None:
        """Read the job's hash; one rq cannot read (a bad date, a bad number) is deleted and
        skipped like a job that no longer exists, instead of ending the worker's loop."""
        try:
            super().refresh()  # type: ignore[no-untyped-call]  # rq leaves refresh() unannotated
        except NoSuchJobError:
            raise
        except Exception as exc:
            log.error("unreadable job %s dropped: %s", self.id, " ".join(str(exc).split())[:300])
            self.connection.delete(self.key)
            raise NoSuchJobError(f"unreadable job {self.id}") from exc

    #: The process's runtime, handed to the job function as its first argument: a class attribute of the
    #: class each :class:`Worker` derives for its runtime (rq makes job objects from the class alone).
    runtime: Any = None

    def perform(self) -> Any:
        """Call the job function with the worker's runtime, then the job's own (JSON) arguments.

        rq's own ``perform`` would call it with the job's arguments only, and the
        function would have to find its services in a process global; instead
        the runtime is given to it, like any other argument (docs/design.md,
        "One runtime per process").
        """
        from lamson.queues import JOB_FUNCTIONS

        name = self.func_name
        if name not in JOB_FUNCTIONS:
            raise NotALamsonJob(f"job {self.id} names {name!r}, not a Lamson job: dropped, nothing run")
        if self.runtime is None:
            raise RuntimeError("a wake-up ran outside a Lamson worker: no runtime to hand it")
        return self.func(self.runtime, *self.args, **self.kwargs)


class Worker(SimpleWorker):
    """rq's SimpleWorker (no fork per job) with a prompt stop and fewer Redis round trips per job.

    **Stopping.** rq listens for commands on a pub/sub channel in a thread
    that waits up to 60 s per read. At teardown rq unsubscribes and then asks
    the thread to stop; redis-py 8.2's ``PubSubWorkerThread.stop()`` joins the
    thread with no time limit, and the thread, having read the UNSUBSCRIBE
    reply before it saw the stop, waits out its 60 s for a new subscription:
    an idle worker took 60-120 s to stop and was SIGKILLed by supervisord.
    Here the thread is told to stop *before* the UNSUBSCRIBE goes out (the
    reply is then the read that wakes it), without waiting, and joined for at
    most ``STOP_JOIN`` seconds: the thread is a daemon, so a slow one cannot
    keep the process. The same with redis-py 5.x (whose ``stop()`` never
    waited) through 8.2.

    **Heartbeats.** rq sends a worker heartbeat (HSET + two EXPIREs, a round
    trip) several times per job. The registration lives ``worker_ttl + 60``
    seconds, so a heartbeat sent less than ``HEARTBEAT_EVERY`` seconds after
    the last one tells nobody anything new; heartbeats riding on a pipeline
    cost no round trip and are always sent.

    **Reconnecting.** An idle worker that loses Redis waits inside rq's loop,
    which tries again after ``max_connection_wait_time`` and doubles it up to
    60 s: the backlog that built up meanwhile would wait that long after Redis
    is back. With ``reconnect_every`` it tries at that steady pace instead,
    and rq's "could not connect" line, logged at every try, is let through
    once a minute.

    ``on_stop`` is called when a stop is requested (SIGTERM, SIGINT), before
    rq's warm shutdown begins, so the job in hand can stop after its current
    message.
    """

    HEARTBEAT_EVERY = 5.0
    STOP_JOIN = 2.0

    def __init__(self, *args: Any, runtime: Any = None, on_stop: Callable[[], None] | None = None,
                 reconnect_every: float | None = None, **kwargs: Any) -> None:
        if runtime is not None:  # the jobs this worker runs are handed its runtime
            kwargs["job_class"] = type("WakeUp", (WakeUp,), {"runtime": runtime, "__module__": __name__})
        super().__init__(*args, **kwargs)
        self.on_stop = on_stop
        self.last_beat = 0.0
        if reconnect_every is not None:
            self.max_connection_wait_time = reconnect_every
            self.exponential_backoff_factor = 1.0
            _quiet_reconnects()

    def request_stop(self, signum: Any, frame: Any) -> None:
        """Warm shutdown, and tell the job in hand to stop after its current message."""
        if self.on_stop is not None:
            self.on_stop()
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # rq: unannotated

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is None and timeout is None:
            now = time.monotonic()
            if now - self.last_beat < self.HEARTBEAT_EVERY:
                return
            self.last_beat = now
        super().heartbeat(timeout, pipeline)

    def unsubscribe(self) -> None:
        """Leave the command channel and end its thread within ``STOP_JOIN`` seconds (see the class)."""
        thread, pubsub = self.pubsub_thread, self.pubsub
        if thread is None or pubsub is None:
            return
        stop_without_waiting(thread)
        try:
            pubsub.unsubscribe()  # its reply wakes the thread, which now sees that it is to stop
        except redis.RedisError as exc:  # Redis gone: the thread's read fails and it ends the same way
            log.debug("unsubscribing from the command channel failed: %s", exc)
        thread.join(timeout=self.STOP_JOIN)
        if thread.is_alive():
            log.debug("the command channel's thread did not end within %.0f s; left to die with the process",
                      self.STOP_JOIN)
        else:
            pubsub.close()
        self.pubsub_thread = None


class _OncePerMinute(logging.Filter):
    """Lets rq's "could not connect to Redis instance" through once a minute (the first one at once)."""

    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self.every = every
        self.last = -every

    def filter(self, record: logging.LogRecord) -> bool:
        if "could not connect to Redis" not in str(record.msg):
            return True
        now = time.monotonic()
        if now - self.last < self.every:
            return False
        self.last = now
        return True


def _quiet_reconnects() -> None:
    rq_log = logging.getLogger("rq.worker")
    if not any(isinstance(f, _OncePerMinute) for f in rq_log.filters):
        rq_log.addFilter(_OncePerMinute())


def stop_without_waiting(thread: Any) -> None:
    """Ask a redis-py ``PubSubWorkerThread`` to stop and return at once.

    ``stop()`` only lowers a flag in redis-py 5.x-8.1; from 8.2 it also joins
    the thread, by default with no limit, and takes ``timeout``.
    """
    if "timeout" in inspect.signature(thread.stop).parameters:
        thread.stop(timeout=0)
    else:
        thread.stop()


def queue(conn: redis.Redis, name: str) -> Queue:
    """An rq queue that stores its jobs as JSON."""
    return Queue(name, connection=conn, serializer=SERIALIZER)


def enqueue(conn: redis.Redis, queue_name: str, func: str, args: list[Any], *, timeout: int,
            description: str, pipeline: Any = None, delay: float = 0.0) -> Job:
    """Enqueue ``func(*args)`` by dotted name; after ``delay`` seconds if given (rq's scheduler)."""
    q = queue(conn, queue_name)
    if delay > 0:
        return q.enqueue_in(timedelta(seconds=delay), func, args=args, kwargs={}, job_timeout=timeout,
                            result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL, description=description[:300])
    return q.enqueue_call(func=func, args=args, kwargs={}, timeout=timeout, result_ttl=RESULT_TTL,
                          failure_ttl=FAILURE_TTL, description=description[:300], pipeline=pipeline)


def length(conn: redis.Redis, queue_name: str) -> int:
    """Jobs waiting on a queue (not started, not scheduled)."""
    return queue(conn, queue_name).count


def queue_counts(conn: redis.Redis, namespace: str, wanted: list[str]) -> list[tuple[str, int, int, int, int]]:
    """Per rq queue of ``namespace`` (and each of ``wanted``): waiting, failed, scheduled, started jobs.

    The queues are opened with Lamson's serializer, as the workers open them:
    rq's default (pickle) is never what reads a Lamson queue.
    """
    found = {q.name for q in Queue.all(connection=conn, serializer=SERIALIZER) if q.name.startswith(namespace + "-")}
    counts = []
    for name in sorted(found | set(wanted)):
        q = queue(conn, name)
        counts.append((name, q.count, q.failed_job_registry.count, q.scheduled_job_registry.count,
                       q.started_job_registry.count))
    return counts


def registered_workers(conn: redis.Redis, prefix: str) -> list[str]:
    """Names of the rq workers registered whose name starts with ``prefix``."""
    return [w.name for w in RqWorker.all(connection=conn, serializer=SERIALIZER) if w.name.startswith(prefix)]


def forget_worker(conn: redis.Redis, name: str) -> bool:
    """Unregister a dead worker at once instead of when its key expires; False if not registered."""
    found = RqWorker.find_by_key(RqWorker.redis_worker_namespace_prefix + name, connection=conn,
                               serializer=SERIALIZER)
    if found is None:
        return False
    found.register_death()  # type: ignore[no-untyped-call]  # rq leaves register_death() unannotated
    return True


@dataclass(frozen=True)
class WorkerView:
    """One registered rq worker as ``rq info`` shows it (``lamson web``'s pipeline page)."""

    name: str
    state: str
    queues: list[str]
    current_job: str | None
    successful: int
    failed: int
    birth: datetime | None


def workers(conn: redis.Redis, namespace: str) -> list[WorkerView]:
    """The registered workers of ``namespace``: named ``NAMESPACE.…`` (Lamson's) or serving one of its queues.

    rq's public worker attributes only (``get_state()``, ``queue_names()``, ``get_current_job_id()``,
    the job counts, ``birth_date``); a worker whose hash vanished meanwhile is not listed (rq drops it).
    """
    found = []
    for w in RqWorker.all(connection=conn, serializer=SERIALIZER):
        queue_names = w.queue_names()
        if not (w.name.startswith(namespace + ".") or any(q.startswith(namespace + "-") for q in queue_names)):
            continue
        found.append(WorkerView(name=w.name, state=str(w.get_state()), queues=queue_names,
                                current_job=w.get_current_job_id(), successful=int(w.successful_job_count),
                                failed=int(w.failed_job_count), birth=w.birth_date))
    return sorted(found, key=lambda v: v.name)
