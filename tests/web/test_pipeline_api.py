"""The pipeline API of ``lamson web`` (lamson.web.pipeline_api) over a real uvicorn server on a free port,
a real redis-server, real Maildirs and, for the programs, a real supervisord.

Each fact is put where Lamson's own code puts it (a parked record by lamson.parked, conversation state
through a router wired on Redis, counters by lamson.metrics) and read back through HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import uvicorn
from starlette.applications import Starlette

from lamson import metrics, parked, rqcompat
from lamson.envelope import Envelope
from lamson.names import Names
from lamson.spool import open_spool
from lamson.typed_settings import Settings
from lamson.web import pipeline_api, pipeline_facts
from lamson.web.context import WebContext
from tests.support import BIN, free_port, stop_process, wait_for

NAMESPACE = "webpipe"


def make_ctx(root: Path, conn: redis.Redis | None, **extra: Any) -> WebContext:
    """A context over a project in ``root`` whose folders are relative (resolved against the root, as
    the web process must do wherever it runs)."""
    values = {"namespace": NAMESPACE, "spool_dir": "run/spool", "outbox_dir": "run/outbox",
              "undeliverable_dir": "run/undeliverable", "bounced_dir": "run/bounced", "queue_dir": "run/queue",
              "run_dir": "run", **extra}
    return WebContext(settings=Settings.of(SimpleNamespace(**values)), root=root, conn=conn)


@contextmanager
def served(ctx: WebContext, interval: float = 0.2) -> Iterator[str]:
    """The pipeline routes in a Starlette app with the rate sampler's lifespan, on uvicorn, in a thread."""
    app = Starlette(routes=pipeline_api.routes(ctx), lifespan=lambda app: pipeline_api.lifespan(ctx, interval))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), 30, what="uvicorn to start")
        assert thread.is_alive(), "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "uvicorn did not stop"


def call(url: str, method: str = "GET", timeout: float = 30.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def park_one(folder: Path, group: str, reason: str, subject: str = "held") -> str:
    data = (f"From: Alice <alice@example.org>\r\nTo: posts@test.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.org>\r\n\r\nbody\r\n").encode()
    envelope = Envelope(mail_from="alice@example.org", rcpt_tos=("posts@test.com",), queue=group)
    return parked.park(folder, envelope, reason, data)


def test_a_parked_message_is_listed_with_its_reason_and_requeued_into_its_groups_spool(
        tmp_path: Path, redis_conn: redis.Redis) -> None:
    ctx = make_ctx(tmp_path, redis_conn)
    key = park_one(tmp_path / "run" / "undeliverable", "posts", "app.handlers.posts.START raised RuntimeError: boom")
    bounced = park_one(tmp_path / "run" / "bounced", "outgoing", "550 5.1.1 no such user", subject="reply")
    spool_dir = tmp_path / "run" / "spool" / ".posts"
    spool_dir.mkdir(parents=True)
    for sub in ("new", "cur", "tmp"):
        (spool_dir / sub).mkdir()
    with served(ctx) as base:
        status, body = call(base + "/api/pipeline/parked")
        assert status == 200
        by_id = {item["id"]: item for item in body["parked"]}
        assert set(by_id) == {f"undeliverable/{key}", f"bounced/{bounced}"}
        held = by_id[f"undeliverable/{key}"]
        assert held["reason"] == "app.handlers.posts.START raised RuntimeError: boom"
        assert (held["mailbox"], held["key"], held["group"]) == ("undeliverable", key, "posts")
        assert (held["from"], held["to"], held["subject"]) == ("Alice <alice@example.org>", "posts@test.com", "held")
        assert 0 <= held["age"] < 60
        assert by_id[f"bounced/{bounced}"]["group"] == "outgoing"

        status, overview = call(base + "/api/pipeline")
        assert status == 200
        stages = {s["name"]: s for s in overview["stages"]}
        assert stages["posts"]["parked"] == 1 and stages["posts"]["waiting"] == 0
        assert stages["outgoing"]["parked"] == 1 and stages["incoming"]["parked"] == 0

        status, done = call(base + f"/api/pipeline/parked/undeliverable/{key}/requeue", "POST")
        assert status == 200, done
        assert done["ok"] is True and done["to"] == "the posts spool" and done["group"] == "posts"

        waiting = open_spool(pipeline_facts.settings(ctx), redis_conn, "posts").waiting()
        assert waiting == [done["key"]]
        assert list((spool_dir / "new").iterdir())[0].name == done["key"]
        assert not list((tmp_path / "run" / "undeliverable" / "new").iterdir())
        names = Names(NAMESPACE)
        assert rqcompat.length(redis_conn, names.queue("posts")) == 1  # its routing wake-up

        status, overview = call(base + "/api/pipeline")
        stages = {s["name"]: s for s in overview["stages"]}
        assert stages["posts"]["waiting"] == 1 and stages["posts"]["parked"] == 0
        assert stages["posts"]["oldest_waiting_age"] is not None
        queues = {q["name"]: q for q in overview["queues"]}
        assert queues[names.queue("posts")]["jobs"] == 1

        status, again = call(base + f"/api/pipeline/parked/undeliverable/{key}/requeue", "POST")
        assert status == 404 and "error" in again
        status, bad = call(base + "/api/pipeline/parked/undeliverable/.hidden/requeue", "POST")
        assert status == 400 and "not a Maildir key" in bad["error"]
        status, other = call(base + f"/api/pipeline/parked/queue/{key}/requeue", "POST")
        assert status == 404


def test_a_record_without_envelope_is_listed_but_not_requeued(tmp_path: Path, redis_conn: redis.Redis) -> None:
    ctx = make_ctx(tmp_path, redis_conn)
    key = parked.park(tmp_path / "run" / "undeliverable", None, "unreadable spool record", b"\x00garbage")
    with served(ctx) as base:
        status, body = call(base + "/api/pipeline/parked")
        assert status == 200
        [item] = body["parked"]
        assert item["reason"] == "unreadable spool record" and item["group"] is None
        status, refused = call(base + f"/api/pipeline/parked/undeliverable/{key}/requeue", "POST")
        assert status == 400 and "no envelope" in refused["error"]
    assert (tmp_path / "run" / "undeliverable" / "new" / key).exists()


def test_conversation_states_are_listed_from_the_routers_state_store(tmp_path: Path, redis_conn: redis.Redis) -> None:
    from lamson.router.routing import RouterClass
    from lamson.router.wiring import wire

    ctx = make_ctx(tmp_path, redis_conn)
    router = wire(RouterClass(), redis_conn, ctx.settings)  # as a router worker stores state
    router.STATE_STORE.set("app.handlers.sample", "a@example.org", "CONFIRMING")
    router.STATE_STORE.set("app.handlers.sample", "b@example.org", "POSTING")
    router.STATE_STORE.set("app.handlers.admin", "c@example.org", "POSTING")
    with served(ctx) as base:
        status, body = call(base + "/api/pipeline/states")
    assert status == 200
    assert sorted((s["module"], s["sender"], s["state"]) for s in body["states"]) == [
        ("app.handlers.admin", "c@example.org", "POSTING"),
        ("app.handlers.sample", "a@example.org", "CONFIRMING"),
        ("app.handlers.sample", "b@example.org", "POSTING")]
    assert body["by_module"] == {"app.handlers.sample": {"CONFIRMING": 1, "POSTING": 1},
                                 "app.handlers.admin": {"POSTING": 1}}
    assert (body["total"], body["truncated"]) == (3, False)

    capped = pipeline_facts.states(ctx, limit=2)
    assert len(capped["states"]) == 2 and capped["truncated"] is True and capped["total"] == 3


def test_rates_move_when_the_stage_counters_do(tmp_path: Path, redis_conn: redis.Redis) -> None:
    ctx = make_ctx(tmp_path, redis_conn)
    names = Names(NAMESPACE)
    metrics.record(redis_conn, names, {"accepted": 100, "routed:incoming": 100, "relayed": 100})
    with served(ctx, interval=0.2) as base:
        def samples() -> int:
            status, body = call(base + "/api/pipeline/rates?minutes=1")
            assert status == 200
            return len(body["series"]["accepted"])

        wait_for(lambda: samples() >= 3, 30, what="three rate points")
        status, body = call(base + "/api/pipeline/rates?minutes=1")
        assert body["interval"] == 0.2 and body["sampling"] is True
        assert all(rate == 0 for _, rate in body["series"]["accepted"])  # nothing counted since the start

        metrics.record(redis_conn, names, {"accepted": 40, "routed:incoming": 30, "routed:posts": 10, "relayed": 20})

        def moved() -> dict[str, Any] | None:
            _, found = call(base + "/api/pipeline/rates?minutes=1")
            series = found["series"]
            return found if all(any(rate > 0 for _, rate in series[name]) for name in series) else None

        found = wait_for(moved, 30, what="rates above 0")
        for name, total in (("accepted", 40), ("routed", 40), ("delivered", 20)):
            points = found["series"][name]
            assert all(later[0] > earlier[0] for earlier, later in zip(points, points[1:], strict=False))
            # The increment shows in one step (two if a sample fell between a pipeline's commands), as
            # the total over that step's length: some tens or hundreds per second, not a fraction.
            stepped = [rate for _, rate in points if rate > 0]
            assert 1 <= len(stepped) <= 2 and max(stepped) > total / 10, (name, points)
        status, bad = call(base + "/api/pipeline/rates?minutes=600")
        assert status == 400 and "error" in bad


def test_redis_down_is_an_answer_not_an_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    dead = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    ctx = make_ctx(tmp_path, dead)
    park_one(tmp_path / "run" / "undeliverable", "incoming", "no route")
    with served(ctx) as base:
        status, body = call(base + "/api/pipeline")
        assert status == 200
        assert body["redis"]["ok"] is False and "Redis" in body["redis"]["error"]
        assert body["programs"] is None and body["programs_error"]
        assert body["queues"] is None and body["workers"] is None
        stages = {s["name"]: s for s in body["stages"]}  # a Maildir spool needs no Redis
        assert stages["incoming"]["parked"] == 1
        status, states = call(base + "/api/pipeline/states")
        assert status == 503 and "error" in states
        status, rates = call(base + "/api/pipeline/rates")
        assert status == 200
        wait_for(lambda: call(base + "/api/pipeline/rates")[1]["sampler_error"], 30, what="the sampler's error")


def test_a_redis_that_never_answers_does_not_hang_the_page(tmp_path: Path) -> None:
    """A peer that accepts connections and says nothing, and a client with no time limits of its own."""
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(16)
        silent = redis.Redis(host="127.0.0.1", port=mute.getsockname()[1])
        ctx = make_ctx(tmp_path, silent)
        with served(ctx) as base:
            started = time.monotonic()
            status, body = call(base + "/api/pipeline", timeout=60)
            assert status == 200 and body["redis"]["ok"] is False
            assert time.monotonic() - started < pipeline_api.TIMEOUT + 10
            status, states = call(base + "/api/pipeline/states", timeout=60)
            assert status == 503


SUPERVISORD_CONF = """\
[unix_http_server]
file=%(here)s/s.sock
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisord]
nodaemon=true
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid

[program:sleeper]
command=/bin/sleep 600
startsecs=0

[program:napper]
command=/bin/sleep 600
process_name=%(program_name)s_%(process_num)02d
numprocs=2
startsecs=0
"""


@pytest.fixture
def supervisord() -> Iterator[Path]:
    """A real supervisord running two trivial programs (one numbered); its socket. Short path: a unix
    socket's path has at most 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="lw-", dir="/tmp"))
    (folder / "supervisord.conf").write_text(SUPERVISORD_CONF)
    proc = subprocess.Popen([str(BIN / "supervisord"), "-c", str(folder / "supervisord.conf")], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: (folder / "s.sock").exists() or proc.poll() is not None, 30, what="supervisord's socket")
        assert proc.poll() is None, (folder / "supervisord.log").read_text()
        yield folder / "s.sock"
    finally:
        stop_process(proc, timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def test_programs_are_listed_and_one_restarted(tmp_path: Path, redis_conn: redis.Redis, supervisord: Path) -> None:
    ctx = make_ctx(tmp_path, redis_conn)
    ctx.supervisor_socket = supervisord
    with served(ctx) as base:
        def running() -> dict[str, Any] | None:
            _, body = call(base + "/api/pipeline")
            found = {p["name"]: p for p in body["programs"] or []}
            return found if len(found) == 3 and all(p["state"] == "RUNNING" for p in found.values()) else None

        programs = wait_for(running, 60, 0.2, "three programs RUNNING")
        assert set(programs) == {"sleeper", "napper:napper_00", "napper:napper_01"}
        assert programs["napper:napper_01"]["group"] == "napper"
        before = programs["napper:napper_01"]["pid"]
        assert isinstance(before, int) and before > 0
        assert programs["sleeper"]["uptime"] is not None and programs["sleeper"]["uptime"] >= 0

        status, done = call(base + "/api/pipeline/programs/napper:napper_01/restart", "POST", timeout=120)
        assert status == 200 and done["ok"] is True
        after = wait_for(running, 60, 0.2, "three programs RUNNING again")
        assert after["napper:napper_01"]["pid"] not in (None, before)
        assert after["napper:napper_00"]["pid"] == programs["napper:napper_00"]["pid"]  # the other one untouched
        with pytest.raises(ProcessLookupError):
            os.kill(before, 0)

        status, missing = call(base + "/api/pipeline/programs/nosuch/restart", "POST")
        assert status == 404 and "nosuch" in missing["error"]


def test_no_supervisord_gives_null_programs_with_the_reason(tmp_path: Path, redis_conn: redis.Redis) -> None:
    ctx = make_ctx(tmp_path, redis_conn)
    ctx.supervisor_socket = tmp_path / "run" / "supervisor.sock"
    with served(ctx) as base:
        status, body = call(base + "/api/pipeline")
        assert status == 200 and body["programs"] is None
        assert "no socket" in body["programs_error"] and body["redis"] == {"ok": True, "error": None}
        status, refused = call(base + "/api/pipeline/programs/sleeper/restart", "POST")
        assert status == 503 and "supervisord" in refused["error"]


def test_queues_workers_and_maildir_queue_stages_as_rq_info_and_the_spool_say(
        tmp_path: Path, redis_conn: redis.Redis) -> None:
    from lamson import queues
    from lamson.queue import Queue, receivers_key

    ctx = make_ctx(tmp_path, redis_conn)
    names = Names(NAMESPACE)
    ours = rqcompat.Worker([rqcompat.queue(redis_conn, names.incoming)], connection=redis_conn,
                           serializer=rqcompat.SERIALIZER, name=f"{NAMESPACE}.router.h.1.x")
    ours.register_birth()  # type: ignore[no-untyped-call]  # rq leaves it unannotated
    theirs = rqcompat.Worker([rqcompat.queue(redis_conn, "other-incoming")], connection=redis_conn,
                             serializer=rqcompat.SERIALIZER, name="other.router.h.1.x")
    theirs.register_birth()  # type: ignore[no-untyped-call]  # rq leaves it unannotated
    queues.wake_router(redis_conn, names, "incoming", ["k1"])
    # A Maildir queue some QueueReceiver serves (announced as lamson.workers.queue_receiver does), one message in it.
    redis_conn.sadd(receivers_key(names), "q-posts")
    Queue(tmp_path / "run" / "posts").push(b"From: a@example.org\r\nTo: posts@test.com\r\n\r\nhi\r\n")
    with served(ctx) as base:
        status, body = call(base + "/api/pipeline")
    assert status == 200 and body["redis"]["ok"] is True
    assert [w["name"] for w in body["workers"]] == [f"{NAMESPACE}.router.h.1.x"]
    [worker] = body["workers"]
    assert worker["queues"] == [names.incoming] and worker["current_job"] is None
    assert (worker["successful"], worker["failed"]) == (0, 0) and worker["birth"]
    assert isinstance(worker["state"], str) and worker["state"]
    by_name = {q["name"]: q for q in body["queues"]}
    assert by_name[names.incoming]["jobs"] == 1 and by_name[names.incoming]["workers"] == 1
    assert by_name[names.outgoing] == {"name": names.outgoing, "jobs": 0, "workers": 0, "failed": 0,
                                       "scheduled": 0, "started": 0}
    assert "other-incoming" not in by_name
    stages = {s["name"]: s for s in body["stages"]}
    assert stages["q-posts"]["waiting"] == 1 and stages["q-posts"]["oldest_waiting_age"] is not None
