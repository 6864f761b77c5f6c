"""The one place that names the rq queues and the job functions between stages.

Stages never import each other: the receiver enqueues the routing job and
handlers enqueue deliveries by dotted name through these functions, so
``lamson.receiver`` does not import ``lamson.workers`` and ``lamson.router``
does not import ``lamson.relay``'s worker.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue, Retry
from rq.job import Job

INCOMING = "lamson-incoming"
OUTGOING = "lamson-outgoing"

ROUTE_JOB = "lamson.workers.jobs.route_message"
DELIVER_JOB = "lamson.relay.jobs.deliver"

#: The routing job's id is derived from the spool key, so the sweeper can
#: tell whether a spooled message already has a live job.
ROUTE_JOB_PREFIX = "route-"

#: How long a finished job stays in Redis. Not 0: rq deletes a job with result_ttl=0
#: through several extra round trips, while a short expiry costs nothing.
RESULT_TTL = 30
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def route_job_id(spool_key: str) -> str:
    """The rq job id of the routing job for one spooled message.

    rq ids allow only letters, digits, ``_`` and ``-``; spool keys hold dots
    (time.unique.host), so those become ``_``. Two keys that differ only
    there would share a time, pid and counter: they cannot both exist.
    """
    return ROUTE_JOB_PREFIX + _UNSAFE.sub("_", spool_key)


def enqueue_route(
    conn: redis.Redis,
    spool_key: str,
    *,
    queue: str = INCOMING,
    timeout: int = 45,
    retries: list[int] | None = None,
    pipeline: Any = None,
) -> Job:
    """Enqueue the routing job for one spooled message (it carries the key, not the mail)."""
    retries = retries or [10, 60, 300]
    return Queue(queue, connection=conn).enqueue_call(
        func=ROUTE_JOB,
        args=(spool_key,),
        kwargs={},
        job_id=route_job_id(spool_key),
        timeout=timeout,
        result_ttl=RESULT_TTL,
        retry=Retry(max=len(retries), interval=retries),
        description=f"route {spool_key}",
        pipeline=pipeline,
    )


def enqueue_delivery(
    conn: redis.Redis,
    data: bytes,
    mail_from: str,
    rcpt_tos: list[str],
    *,
    host: str,
    port: int,
    retries: list[int] | None = None,
    timeout: int = 120,
    delay: int = 0,
) -> Job:
    """Enqueue one outgoing message for the relay worker (after ``delay`` seconds if given)."""
    retries = retries or [5, 30, 120, 600, 1800]
    queue = Queue(OUTGOING, connection=conn)
    job = queue.create_job(
        func=DELIVER_JOB,
        args=(data, mail_from, list(rcpt_tos)),
        kwargs={"host": host, "port": port},
        timeout=timeout,
        result_ttl=RESULT_TTL,
        retry=Retry(max=len(retries), interval=retries),
        description=f"deliver to {', '.join(rcpt_tos)[:200]}",
    )
    if delay > 0:
        return queue.schedule_job(job, datetime.now(UTC) + timedelta(seconds=delay))
    return queue.enqueue_job(job)
