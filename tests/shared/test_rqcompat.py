"""The contract with rq: what lamson.rqcompat needs, checked against the installed rq."""

from __future__ import annotations

import json
import signal
import time
import zlib

import redis

from lamson import queues, rqcompat
from lamson.names import Names
from tests.support import wait_for


def echo(keys: list[str]) -> str:
    return ",".join(keys)


def test_wake_ups_are_json_and_run_by_a_worker(redis_conn: redis.Redis) -> None:
    job = rqcompat.enqueue(redis_conn, "t-q", "tests.shared.test_rqcompat.echo", [["a", "b"]], timeout=10,
                           description="test")
    assert rqcompat.length(redis_conn, "t-q") == 1
    raw = redis_conn.hget(f"rq:job:{job.id}", "data")
    func, _instance, args, _kwargs = json.loads(zlib.decompress(raw))  # JSON (zlib'd by rq): no pickle
    assert func == "tests.shared.test_rqcompat.echo" and args == [["a", "b"]]
    worker = rqcompat.Worker([rqcompat.queue(redis_conn, "t-q")], connection=redis_conn,
                             serializer=rqcompat.SERIALIZER, name="t.test.h.1.x")
    began = time.monotonic()
    worker.work(burst=True)
    assert time.monotonic() - began < 5  # rq's own SimpleWorker takes 60 s here with redis-py 8.2
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
    worker = rqcompat.Worker([rqcompat.queue(redis_conn, "t-q")], connection=redis_conn,
                             serializer=rqcompat.SERIALIZER, name="t.router.h.1.x")
    worker.register_birth()
    assert rqcompat.registered_workers(redis_conn, "t.") == ["t.router.h.1.x"]
    assert rqcompat.registered_workers(redis_conn, "other.") == []
    assert rqcompat.forget_worker(redis_conn, "t.router.h.1.x")
    assert rqcompat.registered_workers(redis_conn, "t.") == []
    assert not rqcompat.forget_worker(redis_conn, "t.nobody.h.1.x")


def test_a_worker_leaves_its_command_channel_promptly_even_when_the_thread_lost_the_race(
        redis_conn: redis.Redis) -> None:
    """redis-py 8.2's PubSubWorkerThread.stop() joins without limit; rq's thread that already read the
    UNSUBSCRIBE reply waits 60 s for a new subscription. rqcompat.Worker must not wait for it."""
    worker = rqcompat.Worker([rqcompat.queue(redis_conn, "t-q")], connection=redis_conn,
                             serializer=rqcompat.SERIALIZER, name="t.router.h.2.x")
    channel = "rq:pubsub:t.router.h.2.x"
    worker.subscribe()
    wait_for(lambda: redis_conn.pubsub_numsub(channel) == [(channel.encode(), 1)], 10, 0.02, "subscribed")
    thread, pubsub = worker.pubsub_thread, worker.pubsub
    assert thread is not None and pubsub is not None
    # Lose the race on purpose: the thread reads the UNSUBSCRIBE reply while it is still told to run.
    pubsub.unsubscribe()
    wait_for(lambda: not pubsub.subscribed, 10, 0.02, "the thread to read the UNSUBSCRIBE reply")
    began = time.monotonic()
    worker.unsubscribe()
    took = time.monotonic() - began
    assert took < rqcompat.Worker.STOP_JOIN + 2, f"{took:.1f} s to leave the command channel"
    assert worker.pubsub_thread is None
    assert redis_conn.pubsub_numsub(channel) == [(channel.encode(), 0)]


def test_a_worker_leaves_its_command_channel_at_once_in_the_usual_case(redis_conn: redis.Redis) -> None:
    worker = rqcompat.Worker([rqcompat.queue(redis_conn, "t-q")], connection=redis_conn,
                             serializer=rqcompat.SERIALIZER, name="t.router.h.3.x")
    worker.subscribe()
    thread = worker.pubsub_thread
    assert thread is not None
    wait_for(lambda: worker.pubsub is not None and worker.pubsub.subscribed, 10, 0.02, "subscribed")
    began = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - began < 1.5
    assert not thread.is_alive()  # it read the reply, saw that it is to stop, and ended


def test_stop_requests_reach_the_job_in_hand(redis_conn: redis.Redis) -> None:
    told: list[bool] = []
    worker = rqcompat.Worker([rqcompat.queue(redis_conn, "t-q")], connection=redis_conn,
                             serializer=rqcompat.SERIALIZER, name="t.router.h.4.x",
                             on_stop=lambda: told.append(True))
    try:
        worker.request_stop(signal.SIGTERM, None)
    except Exception as exc:  # rq's warm shutdown of an idle worker ends its loop with StopRequested
        assert type(exc).__name__ == "StopRequested", exc
    assert told == [True]


def test_reconnect_every_replaces_rqs_growing_backoff(redis_conn: redis.Redis) -> None:
    """rq's idle loop waits max_connection_wait_time after a lost connection and multiplies it by
    exponential_backoff_factor: a rename in rq must fail here, not leave workers on a 60 s backoff."""
    plain = rqcompat.Worker([rqcompat.queue(redis_conn, "t-q")], connection=redis_conn,
                            serializer=rqcompat.SERIALIZER, name="t.router.h.5.x")
    assert plain.max_connection_wait_time > 1 and plain.exponential_backoff_factor > 1  # rq's own defaults
    steady = rqcompat.Worker([rqcompat.queue(redis_conn, "t-q")], connection=redis_conn,
                             serializer=rqcompat.SERIALIZER, name="t.router.h.6.x", reconnect_every=1.0)
    assert (steady.max_connection_wait_time, steady.exponential_backoff_factor) == (1.0, 1.0)
