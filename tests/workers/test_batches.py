"""Routing jobs that carry several spool keys: what the receiver accepted together."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis
from rq import Queue
from rq.job import Job

from lamson import maildir, queues
from lamson.envelope import Envelope
from lamson.recovery import DEATHS
from lamson.spool import MaildirSpool
from tests.support import BIN, make_project

HANDLER = '''
from pathlib import Path
from lamson.router import route, stateless

@route("(address)@(host)", address=".+")
@stateless
def START(message, address=None, host=None):
    with open("handled", "a") as out:
        out.write(address + "\\n")
'''


def project(tmp_path: Path, redis_url: str) -> tuple[Path, MaildirSpool]:
    root = make_project(tmp_path / "app", redis_url, handlers=["app.handlers.batch"])["root"]
    (root / "app" / "handlers" / "batch.py").write_text(HANDLER)
    return root, MaildirSpool(root / "run" / "spool")


def message(name: str) -> bytes:
    return f"From: a@example.org\r\nTo: {name}@test.com\r\nSubject: {name}\r\n\r\nbody\r\n".encode()


def put(spool: MaildirSpool, name: str) -> str:
    return spool.put(Envelope("a@example.org", (f"{name}@test.com",)), message(name))


def work(root: Path) -> None:
    subprocess.run([str(BIN / "lamson"), "worker", "-root", str(root), "-burst"], cwd=root, check=True,
                   timeout=120, capture_output=True)


def test_one_job_routes_a_batch_and_clears_its_index(tmp_path: Path, redis_url: str, redis_conn: redis.Redis) -> None:
    root, spool = project(tmp_path, redis_url)
    keys = [put(spool, f"m{i}") for i in range(5)]
    job = queues.enqueue_routes(redis_conn, keys)
    assert Queue(queues.INCOMING, connection=redis_conn).job_ids == [job.id]
    assert all(queues.live_jobs(redis_conn, keys))
    work(root)
    assert sorted((root / "handled").read_text().split()) == [f"m{i}" for i in range(5)]
    assert spool.keys() == [] and redis_conn.hlen(queues.ROUTING_INDEX) == 0


def test_a_message_that_fails_outside_the_handlers_gets_its_own_job(tmp_path: Path, redis_url: str,
                                                                    redis_conn: redis.Redis) -> None:
    root, spool = project(tmp_path, redis_url)
    good = [put(spool, "good1"), put(spool, "good2")]
    bad = maildir.write(spool.path, b'{"v":99}\nnot a spool record of this version')
    queues.enqueue_routes(redis_conn, [good[0], bad, good[1]], retries=[1])
    work(root)
    # The others were routed; the unreadable one has a job of its own (failing, waiting for its
    # retry: its failure shows in rq), and its file is kept.
    assert sorted((root / "handled").read_text().split()) == ["good1", "good2"]
    own = Job.fetch(queues.route_job_id(bad), connection=redis_conn)
    assert own.get_status() in ("scheduled", "failed")
    assert spool.keys() == [bad] and queues.live_jobs(redis_conn, [bad]) == [True]


def test_a_batch_whose_worker_died_is_split_into_single_jobs(tmp_path: Path, redis_url: str,
                                                             redis_conn: redis.Redis) -> None:
    root, spool = project(tmp_path, redis_url)
    keys = [put(spool, f"s{i}") for i in range(3)]
    job = queues.enqueue_routes(redis_conn, keys)
    job = Job.fetch(job.id, connection=redis_conn)
    job.meta[DEATHS] = 1  # as lamson.recovery records it when it takes the job back from a dead worker
    job.save_meta()
    work(root)
    # Split first (so a worker-killing message can only take itself down), then each routed alone.
    assert sorted((root / "handled").read_text().split()) == ["s0", "s1", "s2"]
    assert spool.keys() == []


def test_the_sweeper_sees_batched_messages_as_covered(tmp_path: Path, redis_url: str, redis_conn: redis.Redis) -> None:
    from lamson.workers.sweeper import sweep

    _, spool = project(tmp_path, redis_url)
    keys = [put(spool, f"w{i}") for i in range(4)]
    queues.enqueue_routes(redis_conn, keys[:3])
    assert sweep(spool, redis_conn, grace=0, timeout=30, retries=[1]) == 1  # only the one with no job
    assert all(queues.live_jobs(redis_conn, keys))
