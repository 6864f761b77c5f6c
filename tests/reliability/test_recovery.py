"""lamson.recovery: a worker restarted under its name takes its dead predecessor's jobs back at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis
from rq import Queue, Retry, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry

from lamson.recovery import recover_predecessor, take_over, worker_key
from tests.support import REPO, wait_for

QUEUE = "recovery-test"

WORKER = """
import sys
from redis import Redis
from rq import Queue, SimpleWorker
conn = Redis.from_url(sys.argv[1])
SimpleWorker([Queue(sys.argv[3], connection=conn)], connection=conn, name=sys.argv[2]).work(burst=False)
"""


@pytest.fixture
def killed_worker(redis_url: str, redis_conn: redis.Redis) -> Iterator[callable]:
    """Start a real rq worker on a job that sleeps, and SIGKILL it mid-job."""
    procs: list[subprocess.Popen] = []

    def run(name: str, retries: int | None) -> Job:
        queue = Queue(QUEUE, connection=redis_conn)
        job = queue.enqueue("time.sleep", args=(60,), retry=Retry(max=retries) if retries else None)
        proc = subprocess.Popen([sys.executable, "-c", WORKER, redis_url, name, QUEUE], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(proc)
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, 30, 0.05, "the job to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return job

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_started_job_is_requeued_at_once_and_the_name_is_free(killed_worker, redis_conn: redis.Redis) -> None:
    job = killed_worker("router-test-01", retries=3)
    assert redis_conn.exists(worker_key("router-test-01"))
    # rq itself refuses a second worker of that name while the dead one's key lives.
    with pytest.raises(ValueError, match="active worker"):
        SimpleWorker([Queue(QUEUE, connection=redis_conn)], connection=redis_conn,
                     name="router-test-01").register_birth()

    result = recover_predecessor(redis_conn, "router-test-01", [QUEUE])

    assert result.requeued == [job.id] and result.failed == [] and result.registered
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    job.refresh()
    assert job.retries_left == 3  # a kill is not the job's fault: its retries are for its exceptions
    assert job.meta["worker_deaths"] == 1
    assert Queue(QUEUE, connection=redis_conn).job_ids[0] == job.id
    assert StartedJobRegistry(QUEUE, connection=redis_conn).get_job_ids(cleanup=False) == []
    assert not redis_conn.exists(worker_key("router-test-01"))
    successor = SimpleWorker([Queue(QUEUE, connection=redis_conn)], connection=redis_conn, name="router-test-01")
    successor.register_birth()
    successor.register_death()


def test_a_job_that_keeps_killing_its_worker_is_parked(killed_worker, redis_conn: redis.Redis) -> None:
    job = killed_worker("relay-test", retries=None)
    job.meta["worker_deaths"] = 2
    job.save_meta()

    result = recover_predecessor(redis_conn, "relay-test", [QUEUE], max_deaths=3)

    assert result.failed == [job.id] and result.requeued == []
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert job.id in FailedJobRegistry(QUEUE, connection=redis_conn).get_job_ids()
    assert "3 workers died while running" in (job.latest_result().exc_string or "")
    assert Queue(QUEUE, connection=redis_conn).job_ids == []


def test_only_the_named_workers_jobs_are_touched(killed_worker, redis_conn: redis.Redis) -> None:
    mine = killed_worker("worker-a", retries=2)
    other = killed_worker("worker-b", retries=2)

    recover_predecessor(redis_conn, "worker-a", [QUEUE])

    assert mine.get_status(refresh=True) == JobStatus.QUEUED
    assert other.get_status(refresh=True) == JobStatus.STARTED
    assert redis_conn.exists(worker_key("worker-b"))


def test_no_predecessor_is_a_no_op(redis_conn: redis.Redis) -> None:
    result = recover_predecessor(redis_conn, "fresh-worker", [QUEUE])
    assert not result
    # Nothing written for this worker or its queue (other tests' rq schedulers may still beat in this Redis).
    assert redis_conn.keys("*fresh-worker*") == [] and redis_conn.keys(f"*{QUEUE}*") == []


def test_take_over_tolerates_redis_down() -> None:
    conn = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    assert not take_over(conn, "router-x", [QUEUE])
