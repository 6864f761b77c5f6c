"""Everything Lamson asks of rq, in one small module, over rq's public API only.

rq jobs here are wake-ups: JSON (the function's dotted name and a list of
spool keys), never pickles, so nothing written into Redis can become code in
a worker, and nothing about a message lives only in rq. What Lamson needs:
queues with the JSON serializer, enqueueing (now, in a pipeline, or after a
delay), a queue's length, and forgetting the registration of a worker that
is known dead so ``rq info`` stops listing it. tests/shared/test_rqcompat.py
is the contract: an rq upgrade that breaks any of it fails there first.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import Worker

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
    queue's failed registry, and the worker goes on (DESIGN.md, invariant 6).
    """

    def refresh(self) -> None:
        """Read the job's hash; one rq cannot read (a bad date, a bad number) is deleted and
        skipped like a job that no longer exists, instead of ending the worker's loop."""
        try:
            super().refresh()
        except NoSuchJobError:
            raise
        except Exception as exc:
            log.error("unreadable job %s dropped: %s", self.id, " ".join(str(exc).split())[:300])
            self.connection.delete(self.key)
            raise NoSuchJobError(f"unreadable job {self.id}") from exc

    def perform(self) -> Any:
        from lamson.queues import JOB_FUNCTIONS

        name = self.func_name
        if name not in JOB_FUNCTIONS:
            raise NotALamsonJob(f"job {self.id} names {name!r}, not a Lamson job: dropped, nothing run")
        return super().perform()


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


def registered_workers(conn: redis.Redis, prefix: str) -> list[str]:
    """Names of the rq workers registered whose name starts with ``prefix``."""
    return [w.name for w in Worker.all(connection=conn, serializer=SERIALIZER) if w.name.startswith(prefix)]


def forget_worker(conn: redis.Redis, name: str) -> bool:
    """Unregister a dead worker at once instead of when its key expires; False if not registered."""
    found = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=conn,
                               serializer=SERIALIZER)
    if found is None:
        return False
    found.register_death()
    return True
