"""Router workers under faults: a killed lock holder, poison messages, a worker killed by its message.

The application is written into a temporary directory and run by real
``lamson worker`` processes against the private Redis (the helpers of
tests/router/test_workers.py, imported).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from lamson import maildir, queues
from lamson.envelope import Envelope
from lamson.spool import MaildirSpool, encode
from tests.router.test_workers import procs, spool_message, worker_args, write_app  # noqa: F401 - procs: fixture
from tests.support import BIN, run_lamson, spawn, wait_for

FAST = """
lock_timeout = 3
lock_wait = 1
sweep_grace = 1
sweep_interval = 1
route_retries = [1, 1]
max_worker_deaths = 3
"""

FAULTY = '''\
import os
import time

import redis

from config import settings
from lamson.router import route

conn = redis.Redis.from_url(settings.redis_url)


@route("(address)@(host)", address="hang|note|poison|fatal")
def START(message, address=None, host=None):
    conn.rpush("started", f"{address} {os.getpid()}")
    if address == "hang":
        time.sleep(120)
    if address == "poison":
        raise RuntimeError("this message always breaks its handler")
    if address == "fatal":
        os._exit(3)  # takes the whole worker down, as a segfault or the OOM killer would
    conn.rpush("handled", f"{address} {message.From} {time.time()}")
'''


def app(tmp_path: Path, redis_url: str) -> Path:
    write_app(tmp_path, redis_url, ["app.handlers.faulty"], {"app/handlers/faulty.py": FAULTY}, extra=FAST)
    return tmp_path


def handled(conn: redis.Redis) -> list[str]:
    return [x.decode().split()[0] + " " + x.decode().split()[1] for x in conn.lrange("handled", 0, -1)]


def test_killed_lock_holder_delays_its_conversation_only_until_the_lock_expires(
        tmp_path: Path, redis_url: str, redis_conn: redis.Redis, procs: list) -> None:  # noqa: F811
    root = app(tmp_path, redis_url)
    for name in ("a", "b"):
        procs.append(spawn(worker_args(root, "-name", f"lock-{name}"), cwd=root, log=root / f"worker-{name}.log"))
    spool_message(root, redis_conn, "alice@example.org", "hang@test.com")
    started = wait_for(lambda: redis_conn.lrange("started", 0, -1), 30, 0.05, "the hanging handler to start")
    holder = int(started[0].split()[1])
    locks = redis_conn.keys("itest:lock:*")
    assert locks and all(redis_conn.pttl(k) > 0 for k in locks), "every conversation lock has an expiry"

    os.kill(holder, signal.SIGKILL)
    killed_at = time.monotonic()
    spool_message(root, redis_conn, "alice@example.org", "note@test.com")
    spool_message(root, redis_conn, "bob@example.org", "note@test.com")
    wait_for(lambda: "note alice@example.org" in handled(redis_conn), 3 + 15, 0.1,
             "alice's next message within lock_timeout + a few seconds")
    assert time.monotonic() - killed_at < 3 + 15
    assert "note bob@example.org" in handled(redis_conn)  # other conversations never waited
    assert all(redis_conn.pttl(k) > 0 for k in redis_conn.keys("itest:lock:*"))


def test_poison_message_is_parked_once_and_the_rest_keeps_flowing(
        tmp_path: Path, redis_url: str, redis_conn: redis.Redis, procs: list) -> None:  # noqa: F811
    root = app(tmp_path, redis_url)
    procs.append(spawn(worker_args(root), cwd=root, log=root / "worker.log"))
    spool_message(root, redis_conn, "mallory@example.org", "poison@test.com")
    for i in range(5):
        spool_message(root, redis_conn, f"user{i}@example.org", "note@test.com")
    wait_for(lambda: len(handled(redis_conn)) == 5, 30, 0.1, "the other five messages")
    wait_for(lambda: not MaildirSpool(root / "run" / "spool").keys(), 30, 0.1, "an empty spool")
    assert [x.split()[0] for x in (y.decode() for y in redis_conn.lrange("started", 0, -1))].count("poison") == 1

    # Parked, with why, where `lamson queue` shows it.
    keys = run_lamson("queue", "-name", str(root / "run" / "undeliverable"), "-keys")
    assert keys.returncode == 0
    (key,) = keys.stdout.decode().split()
    shown = run_lamson("queue", "-name", str(root / "run" / "undeliverable"), "-get", key).stdout
    assert b"always breaks its handler" in shown and b"mallory@example.org" in shown


def test_a_job_that_crashes_outside_the_handler_fails_in_rq_keeps_its_file_and_requeues(
        tmp_path: Path, redis_url: str, redis_conn: redis.Redis, procs: list) -> None:  # noqa: F811
    root = app(tmp_path, redis_url)
    spool = MaildirSpool(root / "run" / "spool")
    # A record the job cannot read (a bad envelope line): the job itself raises, not a handler.
    key = maildir.write(spool.path, b"{not json\nFrom: x@example.org\r\n\r\nbody\r\n")
    queues.enqueue_route(redis_conn, key, retries=[1, 1])
    procs.append(spawn(worker_args(root), cwd=root, log=root / "worker.log"))
    spool_message(root, redis_conn, "user@example.org", "note@test.com")

    failed = FailedJobRegistry(queues.INCOMING, connection=redis_conn)
    wait_for(lambda: failed.get_job_ids(), 30, 0.2, "the job in the failed registry after its retries")
    assert failed.get_job_ids() == [queues.route_job_id(key)]
    assert "note user@example.org" in handled(redis_conn)
    time.sleep(2.5)  # two sweeps: a failed job's file is left alone, not enqueued again
    assert spool.keys() == [key] and failed.get_job_ids() == [queues.route_job_id(key)]

    # The operator repairs the record and sends the job back with rq's own command.
    (spool.path / "new" / key).write_bytes(encode(Envelope("x@example.org", ("note@test.com",)),
                                                  b"From: x@example.org\r\n\r\nbody\r\n"))
    out = subprocess.run([str(BIN / "rq"), "requeue", "--all", "--url", redis_url, "--queue", queues.INCOMING],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: "note x@example.org" in handled(redis_conn), 30, 0.2, "the requeued message routed")
    wait_for(lambda: not spool.keys(), 30, 0.2, "its spool file removed")


def test_a_message_that_kills_its_worker_is_parked_after_max_worker_deaths(
        tmp_path: Path, redis_url: str, redis_conn: redis.Redis, procs: list) -> None:  # noqa: F811
    root = app(tmp_path, redis_url)
    key = spool_message(root, redis_conn, "mallory@example.org", "fatal@test.com")
    spool_message(root, redis_conn, "user@example.org", "note@test.com")
    failed = FailedJobRegistry(queues.INCOMING, connection=redis_conn)
    # Play supervisord: restart the worker under its name whenever it dies.
    for _ in range(6):
        proc = spawn(worker_args(root, "-name", "router-test-00"), cwd=root, log=root / "worker.log")
        procs.append(proc)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline and not failed.get_job_ids():
            time.sleep(0.1)
        if failed.get_job_ids():
            break
    assert failed.get_job_ids() == [queues.route_job_id(key)]
    job = Job.fetch(queues.route_job_id(key), connection=redis_conn)
    assert job.meta["worker_deaths"] == 3
    starts = [x.decode().split()[0] for x in redis_conn.lrange("started", 0, -1)]
    assert starts.count("fatal") == 3  # run max_worker_deaths times: the third death parks it
    wait_for(lambda: "note user@example.org" in handled(redis_conn), 30, 0.2, "the other message")
    assert key in MaildirSpool(root / "run" / "spool").keys()  # kept for inspection and `rq requeue`
