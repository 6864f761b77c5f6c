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
ROUTE_BATCH_JOB = "lamson.workers.jobs.route_messages"
DELIVER_JOB = "lamson.relay.jobs.deliver"

#: The routing job's id is derived from the spool key, so the sweeper can
#: tell whether a spooled message already has a live job.
ROUTE_JOB_PREFIX = "route-"

#: spool key -> id of the batch job that carries it (a single message's job id is derived
#: from its key instead), so the sweeper can tell whether a spooled message has a live job.
ROUTING_INDEX = "lamson:routing"

#: The most messages one routing job carries (the receiver batches what arrives together).
MAX_BATCH = 20

#: How long a finished job stays in Redis. Not 0: rq deletes a job with result_ttl=0
#: through several extra round trips, while a short expiry costs nothing.
RESULT_TTL = 30
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
JOB_KEY = "rq:job:"


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


def enqueue_routes(
    conn: redis.Redis,
    spool_keys: list[str],
    *,
    queue: str = INCOMING,
    timeout: int = 45,
    retries: list[int] | None = None,
) -> Job:
    """One routing job for several spooled messages: rq's per-job cost (dozens of Redis
    commands) is paid once per batch instead of once per message.

    One key is an ordinary :func:`enqueue_route`. For more, the job and an index
    entry per key (``ROUTING_INDEX``) are written in one transaction.
    """
    if len(spool_keys) == 1:
        return enqueue_route(conn, spool_keys[0], queue=queue, timeout=timeout, retries=retries)
    retries = retries or [10, 60, 300]
    rq_queue = Queue(queue, connection=conn)
    job = rq_queue.create_job(
        func=ROUTE_BATCH_JOB,
        args=(list(spool_keys),),
        kwargs={},
        # Each message gets the time one would; the batch may take them all.
        timeout=min(timeout * len(spool_keys), 3600),
        result_ttl=RESULT_TTL,
        retry=Retry(max=len(retries), interval=retries),
        description=f"route {len(spool_keys)} messages from {spool_keys[0]}",
    )
    with conn.pipeline() as pipe:
        rq_queue.enqueue_job(job, pipeline=pipe)  # rq opens the MULTI; the index joins the same transaction
        pipe.hset(ROUTING_INDEX, mapping=dict.fromkeys(spool_keys, job.id))
        pipe.execute()
    return job


def live_jobs(conn: redis.Redis, spool_keys: list[str]) -> list[bool]:
    """For each key, whether a routing job that will route it is queued, running, scheduled or failed.

    A key is covered by its own job (``route_job_id``) or by the batch job the
    index names. A job that finished, or is gone, covers nothing: the message
    is still spooled only because the job stepped aside (a busy conversation).
    """
    if not spool_keys:
        return []
    pipe = conn.pipeline(transaction=False)
    for key in spool_keys:
        pipe.hget(JOB_KEY + route_job_id(key), "status")
    pipe.hmget(ROUTING_INDEX, spool_keys)
    *singles, batch_ids = pipe.execute()
    batch_status: dict[bytes, bytes | None] = {}
    wanted = sorted({b for b in batch_ids if b})
    if wanted:
        pipe = conn.pipeline(transaction=False)
        for job_id in wanted:
            pipe.hget(JOB_KEY + job_id.decode(), "status")
        batch_status = dict(zip(wanted, pipe.execute(), strict=True))
    return [_live(single) or (bool(batch) and _live(batch_status.get(batch)))
            for single, batch in zip(singles, batch_ids, strict=True)]


def _live(status: bytes | None) -> bool:
    return status is not None and status != b"finished"


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
