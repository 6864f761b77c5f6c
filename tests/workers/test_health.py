"""The application's health (lamson.health): the router workers' reports, liveness, and ``/health``.

Against the private Redis; the worker tests run real ``lamson worker``
processes on an application whose handler has a syntax error (the helpers of
tests/router/test_workers.py), and the endpoint test runs the exporter's
server on a free port and asks it over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from lamson import health, liveness, metrics
from lamson.liveness import Liveness, WorkerId, live_workers, new_worker_id, this_host
from lamson.names import Names
from lamson.settings import DEFAULTS
from tests.router.test_workers import procs, spool_message, worker_args, write_app  # noqa: F401 - procs: fixture
from tests.support import free_port, spawn, wait_for, wait_port

NAMES = Names("h")
ELSEWHERE = "h.router.otherhost.4242.abc123"  # a worker of another host: only its TTL can end its keys


def beat(conn: redis.Redis, role: str = "router") -> str:
    worker = new_worker_id(NAMES, role)
    Liveness(conn, NAMES, worker).beat()
    return worker


def test_without_a_live_router_worker_nothing_routes(redis_conn: redis.Redis) -> None:
    found = health.check(redis_conn, NAMES)
    assert not found.ok and found.redis
    assert found.problems == ["no router worker is alive: nothing is routed (mail waits in the spool)"]
    beat(redis_conn, "relay")  # a relay alone routes nothing either
    assert not health.check(redis_conn, NAMES).ok
    router = beat(redis_conn)
    found = health.check(redis_conn, NAMES)
    assert found.ok and found.workers["router"] == [router]
    assert found.summary() == "routing (1 router worker, 1 relay worker alive)"
    assert not health.check(redis_conn, Names("other")).ok  # another application's workers do not count


def test_live_workers_come_from_an_index_kept_by_the_beats(redis_conn: redis.Redis) -> None:
    first, second = beat(redis_conn), beat(redis_conn)
    index = liveness.index_key(NAMES)
    assert live_workers(redis_conn, NAMES) == sorted([first, second])
    redis_conn.delete(NAMES.key("alive", second))  # its TTL lapsed: it is not alive, whatever the index says
    assert live_workers(redis_conn, NAMES) == [first]
    assert redis_conn.zscore(index, second) is not None
    redis_conn.zadd(index, {second: time.time() - liveness.INDEX_HORIZON - 1})  # long gone: dropped
    assert live_workers(redis_conn, NAMES) == [first] and redis_conn.zscore(index, second) is None
    redis_conn.set(NAMES.key("alive", "h.router.otherhost.1.notindexed"), b"1")
    assert live_workers(redis_conn, NAMES) == [first]  # only the index is read, never the keyspace
    Liveness(redis_conn, NAMES, first).forget()
    assert live_workers(redis_conn, NAMES) == [] and not redis_conn.exists(index)


def test_a_failed_load_is_reported_until_withdrawn(redis_conn: redis.Redis) -> None:
    beat(redis_conn)
    error = "SyntaxError: invalid syntax (faulty.py, line 3)"
    assert health.report_load_failure(redis_conn, NAMES, ELSEWHERE, error, ttl=15)
    assert 0 < redis_conn.ttl(health.load_key(NAMES, ELSEWHERE)) <= 15  # a killed worker's report lapses
    found = health.check(redis_conn, NAMES)
    assert not found.ok and found.failures == {ELSEWHERE: error}
    assert found.problems == [f"router worker {ELSEWHERE}: application failed to load: {error}"]
    assert found.as_json()["load_failures"] == {ELSEWHERE: error}
    health.clear_load_failure(redis_conn, NAMES, ELSEWHERE)
    assert health.check(redis_conn, NAMES).ok
    assert not redis_conn.exists(health.load_key(NAMES, ELSEWHERE), health.load_index(NAMES))


def test_keys_of_a_process_gone_from_this_host_are_not_believed(redis_conn: redis.Redis) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = f"h.router.{this_host()}.{int(child.stdout)}.abc123"
    assert WorkerId.parse(gone) is not None
    Liveness(redis_conn, NAMES, gone).beat()
    health.report_load_failure(redis_conn, NAMES, gone, "ImportError: no module", ttl=15)
    assert live_workers(redis_conn, NAMES) == [gone]  # the keys are there, for up to their TTL...
    found = health.check(redis_conn, NAMES)
    assert found.failures == {} and found.workers == {}  # ...but their process is known to be gone
    assert found.problems == ["no router worker is alive: nothing is routed (mail waits in the spool)"]


def test_a_redis_that_does_not_answer_is_unhealthy() -> None:
    conn = redis.Redis(port=free_port(), socket_connect_timeout=2, socket_timeout=2)
    found = health.check(conn, NAMES)
    assert not found.ok and not found.redis
    (problem,) = found.problems
    assert problem.startswith("Redis does not answer (") and problem.endswith("nothing is routed")


def test_a_redis_that_accepts_but_never_answers_costs_seconds_not_minutes() -> None:
    import socket

    with socket.socket() as mute:  # connections are accepted by the kernel and never answered
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        settings = SimpleNamespace(redis_url=f"redis://127.0.0.1:{mute.getsockname()[1]}/0")
        started = time.monotonic()
        found = health.check(health.connection(settings), NAMES)
        took = time.monotonic() - started
    assert not found.ok and not found.redis and "Timeout" in found.problems[0]
    assert took < 10, took  # 2 s socket timeout (lamson.connection.connect alone would wait 30 s)


@pytest.fixture
def exporter(tmp_path: Path, redis_url: str) -> Iterator[int]:
    """``lamson metrics``'s server (metrics.serve) on a free port for namespace h; stopped at the end."""
    settings = SimpleNamespace(**{**DEFAULTS, "redis_url": redis_url, "namespace": "h",
                                  "spool_dir": str(tmp_path / "spool"), "outbox_dir": str(tmp_path / "outbox"),
                                  "undeliverable_dir": str(tmp_path / "undeliverable"),
                                  "bounced_dir": str(tmp_path / "bounced")})
    port = free_port()
    stop = threading.Event()
    thread = threading.Thread(target=metrics.serve, args=(settings, "127.0.0.1", port, stop), daemon=True)
    thread.start()
    try:
        wait_port(port, timeout=30)
        yield port
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def get(port: int, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_the_health_endpoint_answers_503_with_the_reasons_then_200(redis_conn: redis.Redis, exporter: int) -> None:
    code, kind, body = get(exporter, "/health")
    assert (code, kind) == (503, "application/json")
    answer = json.loads(body)
    assert answer["status"] == "unhealthy" and answer["redis"] is True and answer["namespace"] == "h"
    assert answer["problems"] == ["no router worker is alive: nothing is routed (mail waits in the spool)"]

    router = beat(redis_conn)
    code, _, body = get(exporter, "/health")
    assert code == 200
    assert json.loads(body) == {"status": "ok", "namespace": "h", "redis": True, "workers": {"router": 1},
                                "load_failures": {}, "problems": []}

    health.report_load_failure(redis_conn, NAMES, ELSEWHERE, "SyntaxError: invalid syntax", ttl=15)
    code, _, body = get(exporter, "/health")
    assert code == 503 and json.loads(body)["load_failures"] == {ELSEWHERE: "SyntaxError: invalid syntax"}
    assert router not in body.decode()  # the body stays small: counts, not every live worker's id

    code, kind, body = get(exporter, "/metrics")  # prometheus_client still serves the metrics
    assert code == 200 and kind.startswith("text/plain") and b'lamson_redis_up{namespace="h"} 1.0' in body


def test_the_health_endpoint_says_when_redis_does_not_answer(tmp_path: Path) -> None:
    settings = SimpleNamespace(**{**DEFAULTS, "redis_url": f"redis://127.0.0.1:{free_port()}/0", "namespace": "h",
                                  "spool_dir": str(tmp_path / "spool")})
    app = metrics.exporter_app(settings)
    answers: list[str] = []
    body = b"".join(app({"PATH_INFO": "/health", "REQUEST_METHOD": "GET"},
                        lambda status, headers: answers.append(status)))
    assert answers == ["503 Service Unavailable"]
    assert json.loads(body)["redis"] is False


BROKEN = '''\
import redis

from config import settings
from lamson.router import route


@route("(address)@(host)", address="note")
def START(message, address=None, host=None):
    redis.Redis.from_url(settings.redis_url).rpush("handled", message.From)

def broken(:
'''


def test_a_worker_that_cannot_load_the_application_reports_it_until_fixed(
        tmp_path: Path, redis_url: str, redis_conn: redis.Redis, procs: list) -> None:  # noqa: F811
    write_app(tmp_path, redis_url, ["app.handlers.faulty"], {"app/handlers/faulty.py": BROKEN},
              extra="boot_retry = 1\nworker_ttl = 3\n")
    worker = spawn(worker_args(tmp_path), cwd=tmp_path, log=tmp_path / "worker.log")
    procs.append(worker)
    names = Names()
    failures = wait_for(lambda: health.load_failures(redis_conn, names), 60, 0.1, "the worker's report")
    ((worker_id, error),) = failures.items()
    assert WorkerId.parse(worker_id) == WorkerId("lamson", "router", this_host(), worker.pid)
    assert error.startswith("SyntaxError: ") and "faulty.py" in error
    found = health.check(redis_conn, names)
    assert not found.ok and found.problems[0] == f"router worker {worker_id}: application failed to load: {error}"
    assert "tries again every 1s" in (tmp_path / "worker.log").read_text()
    # The waiting worker refreshes its report (every third of worker_ttl), so it outlives one TTL.
    key = health.load_key(names, worker_id)
    lowest = [redis_conn.pttl(key)]

    def refreshed() -> bool:
        now = redis_conn.pttl(key)
        lowest[0] = min(lowest[0], now)
        return now > lowest[0] + 200
    wait_for(refreshed, 30, 0.05, "the report refreshed")
    assert health.load_failures(redis_conn, names) == {worker_id: error} and worker.poll() is None

    (tmp_path / "app" / "handlers" / "faulty.py").write_text(BROKEN.replace("def broken(:\n", ""))
    wait_for(lambda: health.check(redis_conn, names).ok, 60, 0.1, "routing after the fix")
    assert health.load_failures(redis_conn, names) == {}
    assert live_workers(redis_conn, names) == [worker_id]  # the same process: now alive, and routing
    spool_message(tmp_path, redis_conn, "user@example.org", "note@test.com")
    wait_for(lambda: redis_conn.lrange("handled", 0, -1) == [b"user@example.org"], 30, 0.1, "the message routed")


def test_a_worker_stopped_while_it_cannot_load_withdraws_its_report(
        tmp_path: Path, redis_url: str, redis_conn: redis.Redis, procs: list) -> None:  # noqa: F811
    write_app(tmp_path, redis_url, ["app.handlers.faulty"], {"app/handlers/faulty.py": BROKEN},
              extra="boot_retry = 30\n")
    worker = spawn(worker_args(tmp_path), cwd=tmp_path, log=tmp_path / "worker.log")
    procs.append(worker)
    wait_for(lambda: health.load_failures(redis_conn, Names()), 60, 0.1, "the worker's report")
    worker.terminate()
    assert worker.wait(10) == 0  # no need to wait boot_retry: the stop is honoured at once
    assert health.load_failures(redis_conn, Names()) == {}
    assert redis_conn.keys("lamson:health:*") == []
