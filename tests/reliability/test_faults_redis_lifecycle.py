"""Redis going away under the lifecycle: no attempt is charged to a message, no stale lock stalls the sweep."""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis

from lamson import maildir
from tests.reliability.test_lifecycle_pipeline import App, handled, make_app
from tests.sink import smtp_sink
from tests.support import redis_server, stop_process, wait_for, wait_port


def test_redis_killed_under_a_running_handler_costs_the_message_no_attempt(tmp_path: Path,
                                                                          apps: list[App]) -> None:  # noqa: F811
    redis_dir = tmp_path / "redis"
    with redis_server(redis_dir) as (url, proc), smtp_sink() as sink:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        # max_attempts = 1: a single attempt charged for Redis's death would park the message.
        app = make_app(tmp_path, "app", url, sink, extra="max_attempts = 1\n")
        apps.append(app)
        app.start("receiver")
        worker = app.start("worker")
        relay = app.start("relay")
        wait_port(app.project["receiver_port"])
        app.send("a@client.test", "slow@test.com", "m1")
        conn = redis.Redis.from_url(url)
        wait_for(lambda: conn.llen("app:handled") == 1, 30, 0.02, "the handler running")
        stop_process(proc)  # Redis goes away while the handler sleeps
        time.sleep(3)
        with redis_server(redis_dir, port=port) as (_url, _proc):  # back, from its AOF
            wait_for(lambda: sink.messages, 120, 0.2, "the reply, once Redis is back")
            wait_for(lambda: not os.listdir(app.root / "run" / "spool" / "cur")
                     and not maildir.keys(app.root / "run" / "spool"), 30, 0.2, "the spool emptied")
            assert maildir.keys(app.root / "run" / "undeliverable") == []  # not parked
            # The very same processes: they waited for Redis instead of exiting.
            assert worker.poll() is None and relay.poll() is None
            assert "Redis is back: worker" in (app.root / "worker.log").read_text()


def test_a_stale_sweeper_lock_delays_the_sweep_by_two_intervals_at_most(tmp_path: Path, redis_url: str,
                                                                        redis_conn: redis.Redis,
                                                                        apps: list[App]) -> None:  # noqa: F811
    with smtp_sink() as sink:
        app = make_app(tmp_path, "app", redis_url, sink, extra="sweep_interval = 2\nsweep_grace = 1\n")
        apps.append(app)
        # A sweeper that died holding its lock (or a Redis restarted from its AOF with the lock in it).
        redis_conn.set("app:sweeper:incoming", b"dead-holder", ex=4)
        for i in range(3):  # mail spooled while nothing was running: no wake-up was ever sent
            data = f"From: a{i}@client.test\r\nTo: bot@test.com\r\nSubject: m{i}\r\n\r\nhi\r\n".encode()
            from lamson.envelope import Envelope
            from lamson.spool import MaildirSpool

            MaildirSpool(app.root / "run" / "spool").put(Envelope(f"a{i}@client.test", ("bot@test.com",)), data)
        started = time.monotonic()
        app.start("worker")
        wait_for(lambda: len(handled(redis_conn, "app")) == 3, 30, 0.1, "the backlog swept")
        assert time.monotonic() - started < 15  # the lock expires after two intervals, not five minutes


def test_a_worker_waiting_for_redis_stops_when_told(tmp_path: Path, apps: list[App]) -> None:  # noqa: F811
    import signal
    import subprocess

    with redis_server(tmp_path / "redis") as (url, proc), smtp_sink() as sink:
        app = make_app(tmp_path, "app", url, sink)
        apps.append(app)
        worker = app.start("worker")
        wait_for(lambda: "worker app.router" in (app.root / "worker.log").read_text(), 30, 0.1, "the worker up")
        stop_process(proc)  # Redis gone: the worker waits for it instead of exiting...
        time.sleep(3)
        assert worker.poll() is None
        started = time.monotonic()
        os.kill(worker.pid, signal.SIGTERM)  # ...but a stop request still ends it at once
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            raise AssertionError("the worker ignored SIGTERM while Redis was down") from None
        assert time.monotonic() - started < 20 and worker.returncode == 0


def test_a_redis_that_refuses_writes_delays_mail_without_parking_it(tmp_path: Path,
                                                                    apps: list[App]) -> None:  # noqa: F811
    with redis_server(tmp_path / "redis") as (url, _proc), smtp_sink() as sink:
        app = make_app(tmp_path, "app", url, sink, extra="max_attempts = 1\n")
        apps.append(app)
        app.start("receiver")
        worker = app.start("worker")
        relay = app.start("relay")
        wait_port(app.project["receiver_port"])
        conn = redis.Redis.from_url(url)
        # Every write refused (NOREPLICAS), as a Redis whose disk or memory is full refuses them
        # (MISCONF, OOM): reads and pings still work.
        conn.config_set("min-replicas-to-write", 1)
        app.send("a@client.test", "bot@test.com", "m1")  # the Maildir spool still accepts
        time.sleep(4)
        assert sink.messages == [] and worker.poll() is None and relay.poll() is None
        conn.config_set("min-replicas-to-write", 0)  # the operator frees the disk
        wait_for(lambda: sink.messages, 120, 0.2, "the reply, once Redis takes writes again")
        assert maildir.keys(app.root / "run" / "undeliverable") == []  # not parked, no attempt charged
        assert worker.poll() is None and relay.poll() is None  # the same processes
