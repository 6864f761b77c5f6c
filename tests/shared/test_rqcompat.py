"""The contract with rq: what lamson.rqcompat needs, checked against the installed rq."""

from __future__ import annotations

import json
import zlib

import redis
from rq import SimpleWorker

from lamson import queues, rqcompat
from lamson.names import Names


def echo(keys: list[str]) -> str:
    return ",".join(keys)


def test_wake_ups_are_json_and_run_by_a_worker(redis_conn: redis.Redis) -> None:
    job = rqcompat.enqueue(redis_conn, "t-q", "tests.shared.test_rqcompat.echo", [["a", "b"]], timeout=10,
                           description="test")
    assert rqcompat.length(redis_conn, "t-q") == 1
    raw = redis_conn.hget(f"rq:job:{job.id}", "data")
    func, _instance, args, _kwargs = json.loads(zlib.decompress(raw))  # JSON (zlib'd by rq): no pickle
    assert func == "tests.shared.test_rqcompat.echo" and args == [["a", "b"]]
    worker = SimpleWorker([rqcompat.queue(redis_conn, "t-q")], connection=redis_conn,
                          serializer=rqcompat.SERIALIZER, name="t.test.h.1.x")
    worker.work(burst=True)
    job.refresh()
    assert job.return_value() == "a,b" and rqcompat.length(redis_conn, "t-q") == 0


def test_wake_router_in_a_pipeline_and_delayed(redis_conn: redis.Redis) -> None:
    names = Names("t")
    with redis_conn.pipeline() as pipe:
        queues.wake_router(redis_conn, names, "incoming", ["k1"], pipeline=pipe)
        assert rqcompat.length(redis_conn, names.incoming) == 0
        pipe.execute()
    assert rqcompat.length(redis_conn, names.incoming) == 1
    later = queues.wake_relay(redis_conn, names, ["k2"], delay=60)
    assert rqcompat.length(redis_conn, names.outgoing) == 0  # scheduled, not queued
    assert later.get_status() == "scheduled"


def test_registered_workers_and_forgetting_a_dead_one(redis_conn: redis.Redis) -> None:
    worker = SimpleWorker([rqcompat.queue(redis_conn, "t-q")], connection=redis_conn,
                          serializer=rqcompat.SERIALIZER, name="t.router.h.1.x")
    worker.register_birth()
    assert rqcompat.registered_workers(redis_conn, "t.") == ["t.router.h.1.x"]
    assert rqcompat.registered_workers(redis_conn, "other.") == []
    assert rqcompat.forget_worker(redis_conn, "t.router.h.1.x")
    assert rqcompat.registered_workers(redis_conn, "t.") == []
    assert not rqcompat.forget_worker(redis_conn, "t.nobody.h.1.x")
