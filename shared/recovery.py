"""Taking over from a worker that died under the same name.

supervisord restarts a killed worker under the name it had (``lamson worker
-name router-HOST-01``). rq would only notice the dead worker's job when its
heartbeat lapses (job_timeout + 60 s later) and, until the worker key
expires, it refuses to register a worker of that name at all. But a worker
process that finds its own name registered knows better: names are given
one per supervisord process slot, and that slot's previous process is gone.
So at start-up, before rq registers the new worker, :func:`recover_predecessor`
puts the predecessor's unfinished jobs back on their queue at once and
removes its registration.

A job the predecessor was running when it died goes back to the front of
its queue. A kill is not the job's fault (it may have been waiting for a
conversation lock, or Redis went away under it), so it does not use up one
of the job's retries, which are for exceptions it raises. It is counted
instead, in the job's meta (``worker_deaths``): a message that kills its
worker every time is run at most ``max_deaths`` times, then lands in rq's
FailedJobRegistry, where ``rq info`` shows it and ``rq requeue`` sends it back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE, Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.registry import StartedJobRegistry
from rq.utils import as_text, parse_composite_key
from rq.worker import Worker
from rq.worker_registration import REDIS_WORKER_KEYS, WORKERS_BY_QUEUE_KEY

log = logging.getLogger("lamson.recovery")

#: Default for ``max_deaths``: how many workers may die with one job in hand before it is parked.
MAX_DEATHS = 5
DEATHS = "worker_deaths"


@dataclass
class Recovered:
    """What taking over from a predecessor did (for logs and tests)."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    registered: bool = False

    def __bool__(self) -> bool:
        return self.registered or bool(self.requeued or self.failed)


def worker_key(name: str) -> str:
    """The Redis hash rq keeps for a worker of this name."""
    return Worker.redis_worker_namespace_prefix + name


def recover_predecessor(conn: redis.Redis, name: str, queue_names: list[str], *,
                        max_deaths: int = MAX_DEATHS) -> Recovered:
    """Requeue (or fail, when out of retries) the jobs a dead worker called ``name`` left started.

    ``queue_names`` are the queues this worker will listen on; the
    predecessor's own list (from its registration) is used as well, so jobs
    are found even if the configuration changed between the two processes.
    Call it only when no live process can hold the name. A job whose
    workers died ``max_deaths`` times is failed instead of requeued.
    """
    result = Recovered()
    key = worker_key(name)
    registered_queues = as_text(conn.hget(key, "queues") or b"")
    result.registered = bool(conn.exists(key))
    all_queues = sorted(set(queue_names) | {q for q in registered_queues.split(",") if q})

    composite = {as_text(m) for m in conn.smembers(WORKER_EXECUTIONS_KEY_TEMPLATE.format(name))}
    # The worker's execution index can lag behind the registries; look there too.
    for queue in all_queues:
        registry = StartedJobRegistry(queue, connection=conn)
        for member in conn.zrange(registry.key, 0, -1):
            member = as_text(member)
            if member in composite:
                continue
            job_id, execution_id = parse_composite_key(member)
            owner = conn.hget(Execution(execution_id, job_id, conn).key, "worker_name")
            if owner is not None and as_text(owner) == name:
                composite.add(member)

    for member in sorted(composite):
        job_id, execution_id = parse_composite_key(member)
        outcome = _take_back(conn, job_id, Execution(execution_id, job_id, conn, worker_name=name), max_deaths)
        if outcome == "requeued":
            result.requeued.append(job_id)
        elif outcome == "failed":
            result.failed.append(job_id)

    pipe = conn.pipeline()
    pipe.srem(REDIS_WORKER_KEYS, key)
    for queue in all_queues:
        pipe.srem(WORKERS_BY_QUEUE_KEY % queue, key)
    pipe.delete(key, WORKER_EXECUTIONS_KEY_TEMPLATE.format(name))
    pipe.execute()
    if result:
        log.warning("worker %s took over from its dead predecessor: requeued %s, failed %s",
                    name, result.requeued or "nothing", result.failed or "nothing")
    return result


def _take_back(conn: redis.Redis, job_id: str, execution: Execution, max_deaths: int) -> str:
    """Remove one dead execution; requeue its job at the front if it may run again."""
    try:
        job = Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        conn.delete(execution.key)
        return "gone"
    pipe = conn.pipeline()
    pipe.delete(execution.key)
    pipe.zrem(job.started_job_registry.key, execution.composite_key)
    pipe.zrem(ExecutionRegistry(job_id=job_id, connection=conn).key, execution.id)
    if job.get_status(refresh=True) != JobStatus.STARTED:
        # Finished or failed just before the kill, or already retried by rq's own cleanup.
        pipe.execute()
        return "left"
    queue = Queue(job.origin, connection=conn, job_class=Job)
    deaths = int(job.meta.get(DEATHS, 0)) + 1
    job.meta[DEATHS] = deaths  # saved with the job by the enqueue or the failure below
    if deaths < max_deaths:
        queue._enqueue_job(job, pipeline=pipe, at_front=True)
        pipe.execute()
        log.warning("job %s was running in a dead worker (death %d of %d allowed); requeued",
                    job_id, deaths, max_deaths - 1)
        return "requeued"
    job.save(pipeline=pipe)
    record_job_failure(job, f"{deaths} workers died while running this job (the last: {execution.worker_name}); "
                            "parked here so it cannot take more down: rq requeue sends it back", pipe)
    pipe.execute()
    log.error("job %s was running in %d dead workers: moved to the failed registry", job_id, deaths)
    return "failed"


def take_over(conn: redis.Redis, name: str, queue_names: list[str], *, max_deaths: int = MAX_DEATHS) -> Recovered:
    """What a worker process calls before registering: recover, or log why it could not.

    With Redis down there is nothing to recover from yet; rq's registration
    fails next and supervisord starts the process again later.
    """
    try:
        return recover_predecessor(conn, name, queue_names, max_deaths=max_deaths)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        log.warning("cannot check for a predecessor named %s: Redis unavailable (%s)", name, exc)
        return Recovered()
