"""The contract with rq: what lamson.rqcompat needs, checked against the installed rq."""

from __future__ import annotations

import ast
import inspect
import json
import logging
import os
import signal
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import redis
import rq.worker.base as rq_worker_base
from redis.client import PubSubWorkerThread
from rq.command import send_shutdown_command
from rq.job import Job
from rq.worker import BaseWorker
from rq.worker import Worker as RqWorker

from lamson import queues, rqcompat
from lamson.names import Names
from tests.support import REPO, wait_for

ROUTE = queues.ROUTE_JOB


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


# --- What rqcompat uses of rq beyond its documented API (see its docstring): one check per name, each
# failing with the name and what Lamson needs it for, so that an rq or redis-py upgrade is caught here.

def _params(func: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(func).parameters)


@pytest.mark.parametrize(("owner", "name", "params", "why"), [
    (Job, "refresh", ["self"], "WakeUp drops a job hash rq cannot read"),
    (Job, "perform", ["self"], "WakeUp refuses functions Lamson never enqueues"),
    (BaseWorker, "request_stop", ["self", "signum", "frame"], "on_stop: the job in hand stops after its message"),
    (BaseWorker, "heartbeat", ["self", "timeout", "pipeline"], "Worker skips heartbeats that tell nothing new"),
    (BaseWorker, "subscribe", ["self"], "the command channel whose thread Worker.unsubscribe ends"),
    (BaseWorker, "unsubscribe", ["self"], "Worker's stop that does not wait on redis-py's pub/sub thread"),
    (BaseWorker, "register_death", ["self"], "forget_worker unregisters a worker known dead"),
    (PubSubWorkerThread, "stop", None, "stop_without_waiting asks the pub/sub thread to end"),
])
def test_the_methods_rqcompat_overrides_or_calls_keep_their_names_and_parameters(
        owner: type, name: str, params: list[str] | None, why: str) -> None:
    method = getattr(owner, name, None)
    assert callable(method), f"{owner.__module__}.{owner.__name__}.{name} is gone: lamson.rqcompat needs it ({why})"
    if params is not None:
        assert _params(method) == params, (
            f"{owner.__name__}.{name}{inspect.signature(method)} changed (was {params}): lamson.rqcompat "
            f"overrides or calls it ({why})")


def test_the_attributes_rqcompat_sets_or_reads_are_still_rqs(redis_conn: redis.Redis) -> None:
    for name in ("max_connection_wait_time", "exponential_backoff_factor"):
        assert isinstance(getattr(BaseWorker, name, None), float), f"rq's worker has no float {name}: reconnect_every"
        assert f"self.{name}" in inspect.getsource(rq_worker_base), f"rq's idle loop no longer reads {name}"
    worker = rqcompat.Worker([rqcompat.queue(redis_conn, "t-q")], connection=redis_conn,
                             serializer=rqcompat.SERIALIZER, name="t.router.h.7.x")
    assert (worker.pubsub, worker.pubsub_thread) == (None, None), "rq's pubsub/pubsub_thread attributes changed"
    assert worker.key == RqWorker.redis_worker_namespace_prefix + worker.name, (
        "rq's worker key is no longer redis_worker_namespace_prefix + name: forget_worker finds workers by it")


def test_rqs_reconnect_complaint_is_the_line_the_filter_thins_out() -> None:
    """rqcompat lets rq's "could not connect to Redis" line through once a minute, by logger and text."""
    assert rq_worker_base.logger is logging.getLogger("rq.worker"), "rq's worker logs elsewhere than rq.worker"
    assert "could not connect to Redis" in inspect.getsource(rq_worker_base), "rq's reconnect line changed"


def test_rq_reads_dequeued_jobs_through_the_job_class_refresh(redis_conn: redis.Redis) -> None:
    """WakeUp.refresh is on rq's read path: a hash rq cannot parse is dropped and the loop goes on."""
    q = rqcompat.queue(redis_conn, "t-q")
    redis_conn.hset("rq:job:bad", mapping={"created_at": "not a date", "status": "queued",
                                           "data": zlib.compress(json.dumps([ROUTE, None, [], {}]).encode())})
    redis_conn.rpush(q.key, "bad")
    worker = rqcompat.Worker([q], connection=redis_conn, serializer=rqcompat.SERIALIZER,
                             job_class=rqcompat.WakeUp, name="t.router.h.8.x")
    assert worker.work(burst=True) is not None, "rq's loop ended on an unreadable job"
    assert not redis_conn.exists("rq:job:bad"), "WakeUp.refresh was not called on the job rq dequeued"


def test_rq_runs_a_job_through_the_job_class_perform(redis_conn: redis.Redis) -> None:
    """WakeUp.perform is what rq calls: a function Lamson never enqueues fails with NotALamsonJob."""
    q = rqcompat.queue(redis_conn, "t-q")
    job = rqcompat.enqueue(redis_conn, "t-q", "tests.shared.test_rqcompat.echo", [["a"]], timeout=10,
                           description="test")
    worker = rqcompat.Worker([q], connection=redis_conn, serializer=rqcompat.SERIALIZER,
                             job_class=rqcompat.WakeUp, name="t.router.h.9.x")
    worker.work(burst=True)
    assert job.id in q.failed_job_registry.get_job_ids()
    result = job.latest_result()
    assert result is not None and "NotALamsonJob" in (result.exc_string or ""), "rq ran the job without perform()"


def test_sigterm_reaches_request_stop_in_rqs_loop(redis_conn: redis.Redis) -> None:
    """rq installs request_stop as the SIGTERM handler of work(): on_stop is called and the loop ends."""
    told: list[bool] = []
    worker = rqcompat.Worker([rqcompat.queue(redis_conn, "t-q")], connection=redis_conn,
                             serializer=rqcompat.SERIALIZER, name="t.router.h.10.x",
                             on_stop=lambda: told.append(True))
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    wrong: list[object] = []

    def send() -> None:
        wait_for(lambda: rqcompat.registered_workers(redis_conn, "t.router.h.10.") != [], 10, 0.02, "registered")
        handler = signal.getsignal(signal.SIGTERM)
        if getattr(handler, "__func__", None) is rqcompat.Worker.request_stop:
            os.kill(os.getpid(), signal.SIGTERM)
        else:  # SIGTERM would kill the test process: stop the worker through rq's command instead
            wrong.append(handler)
            send_shutdown_command(redis_conn, worker.name)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        worker.work(burst=False)
    finally:
        sender.join(10)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert not wrong, f"rq's SIGTERM handler inside work() is {wrong[0]!r}, not Worker.request_stop"
    assert told == [True]


def test_queue_counts_reads_lamson_queues_with_the_json_serializer(redis_conn: redis.Redis) -> None:
    names = Names("t")
    queues.wake_router(redis_conn, names, "incoming", ["k1"])
    queues.wake_router(redis_conn, names, "q-posts", ["k2"])
    queues.wake_relay(redis_conn, names, ["k3"], delay=60)
    rqcompat.queue(redis_conn, "other-q").enqueue_call(func="tests.shared.test_rqcompat.echo", args=[[]])
    counts = {name: rest for name, *rest in rqcompat.queue_counts(redis_conn, "t", [names.incoming, names.outgoing])}
    assert counts == {names.incoming: [1, 0, 0, 0], names.queue("q-posts"): [1, 0, 0, 0],
                      names.outgoing: [0, 0, 1, 0]}


PACKAGE_DIRS = ("shared", "workers", "router", "relay", "receiver")


def test_no_module_of_the_package_but_rqcompat_imports_rq() -> None:
    """Everything Lamson asks of rq is in lamson.rqcompat (bench/ and tests/ may use rq's public API)."""
    offenders = []
    for folder in PACKAGE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            if path == REPO / "shared" / "rqcompat.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                           else [] if node.level else [node.module or ""])  # level: a relative import
                offenders += [f"{path.relative_to(REPO)}:{node.lineno} imports {m}"
                              for m in modules if m == "rq" or m.startswith("rq.")]
    assert not offenders, "only lamson.rqcompat may import rq:\n" + "\n".join(offenders)


def test_a_worker_hands_its_runtime_to_each_job(redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs get their services as an argument (docs/design.md, "One runtime per process"), not from a global."""
    from lamson.workers import jobs

    seen: list[tuple[object, list[str], str]] = []

    def route(runtime: object, keys: list[str], group: str = "incoming") -> str:
        seen.append((runtime, keys, group))
        return "ok"

    monkeypatch.setattr(jobs, "route", route)
    runtime = object()
    rqcompat.enqueue(redis_conn, "t-rt", queues.ROUTE_JOB, [["k1"], "posts"], timeout=10, description="test")
    worker = rqcompat.Worker([rqcompat.queue(redis_conn, "t-rt")], connection=redis_conn,
                             serializer=rqcompat.SERIALIZER, name="t.test.h.1.rt", runtime=runtime)
    worker.work(burst=True)
    assert seen == [(runtime, ["k1"], "posts")]
    unbound = rqcompat.Worker([rqcompat.queue(redis_conn, "t-rt")], connection=redis_conn,
                              serializer=rqcompat.SERIALIZER, name="t.test.h.1.none", job_class=rqcompat.WakeUp)
    failed = rqcompat.enqueue(redis_conn, "t-rt", queues.ROUTE_JOB, [["k2"]], timeout=10, description="test")
    unbound.work(burst=True)  # a wake-up outside a worker with a runtime runs nothing
    assert len(seen) == 1 and failed.id in rqcompat.queue(redis_conn, "t-rt").failed_job_registry.get_job_ids()
