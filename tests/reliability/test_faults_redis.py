"""Redis down: the Maildir spool keeps accepting and drains later; the Redis spool answers 451.

Also the start-up checks of lamson.redis_check: persistence off and an
evicting maxmemory-policy are reported (and refused by a Redis-spool receiver).
"""

from __future__ import annotations

import smtplib
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis

from lamson.redis_check import persistence_problems
from lamson.workerbase import startup_problems
from tests.e2e.conftest import Pipeline
from tests.receiver.test_receiver import MESSAGE, start_receiver
from tests.reliability.ledger import Ledger, replies, session
from tests.support import BIN, free_port, make_project, redis_server, spawn, stop_process, wait_for


def test_maildir_spool_accepts_while_redis_is_down_and_drains_when_it_is_back(pipeline: Pipeline) -> None:
    pipeline.ctl("stop", "redis")
    ledger = Ledger()
    run = uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(session, ledger, pipeline.ports["receiver"], c, 10, run, deadline=60) for c in range(4)]:
            f.result()
    assert ledger.codes and set(ledger.codes.values()) == {250}, ledger.codes
    assert len(list((pipeline.root / "run" / "spool" / "new").iterdir())) == 40

    pipeline.ctl("start", "redis")
    queue = pipeline.root / "run" / "queue"
    # The sweeper finds the spooled messages that never got a job (sweep_grace + sweep_interval).
    wait_for(lambda: ledger.accepted() <= set(replies(queue)), 120, 0.5, "a reply to each message accepted")
    wait_for(lambda: not list((pipeline.root / "run" / "spool" / "new").iterdir()), 30, 0.2, "an empty spool")


def send_one(port: int) -> int:
    """The reply code to one message (0: no answer at all)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail("sender@example.org", ["hello@test.com"], MESSAGE)
            return 250
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code
    except (smtplib.SMTPException, OSError):
        return 0


def test_redis_spool_answers_451_never_250_while_redis_is_down(tmp_path: Path) -> None:
    port = free_port()
    with redis_server(tmp_path / "redis", port=port) as (url, proc):
        project = make_project(tmp_path / "app", url, spool="redis")
        receiver = start_receiver(project)
        try:
            assert send_one(project["receiver_port"]) == 250
            stop_process(proc)  # Redis goes away under a running receiver
            codes = [send_one(project["receiver_port"]) for _ in range(5)]
            assert codes == [451] * 5
            assert receiver.poll() is None  # still serving: the clients keep their mail and retry
            with redis_server(tmp_path / "redis", port=port) as (_url, _proc):
                wait_for(lambda: send_one(project["receiver_port"]) == 250, 30, 0.2, "250 once Redis is back")
                keys = redis.Redis.from_url(url).zcard("lamson:spool:incoming:new")
                assert keys >= 2  # the first message survived the restart (AOF), and the new one
        finally:
            stop_process(receiver)


def test_persistence_problems_are_reported(tmp_path: Path) -> None:
    with redis_server(tmp_path / "ok") as (url, _):
        assert persistence_problems(redis.Redis.from_url(url)) == []
    with redis_server(tmp_path / "bad", extra=["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]) as (url, _):
        problems = persistence_problems(redis.Redis.from_url(url))
        assert len(problems) == 2
        assert "appendonly" in problems[0] and "allkeys-lru" in problems[1]
    with redis_server(tmp_path / "managed", extra=["--rename-command", "CONFIG", '""']) as (url, _):
        assert persistence_problems(redis.Redis.from_url(url)) == []  # cannot check: no false alarm
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    assert "cannot check Redis persistence" in startup_problems(dead)[0]


def test_redis_spool_receiver_refuses_a_redis_without_persistence(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis", extra=["--appendonly", "no"]) as (url, _):
        project = make_project(tmp_path / "app", url, spool="redis")
        log = project["root"] / "receiver.log"
        proc = spawn([str(BIN / "lamson"), "receiver", "-root", str(project["root"])], cwd=project["root"], log=log)
        try:
            assert proc.wait(30) != 0
        finally:
            stop_process(proc)
        text = log.read_text()
        assert "appendonly" in text and "refusing to start" in text


def test_maildir_receiver_and_workers_warn_loudly(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis", extra=["--maxmemory-policy", "volatile-lru"]) as (url, _):
        project = make_project(tmp_path / "app", url)
        proc = start_receiver(project)
        stop_process(proc)
        assert "WARNING: Redis maxmemory-policy is 'volatile-lru'" in (project["root"] / "receiver.log").read_text()
        log = project["root"] / "worker.log"
        worker = spawn([str(BIN / "lamson"), "worker", "-root", str(project["root"]), "-burst"], cwd=project["root"],
                       log=log)
        try:
            worker.wait(60)
        finally:
            stop_process(worker)
        assert "WARNING: Redis maxmemory-policy is 'volatile-lru'" in log.read_text()
