"""The router in real worker processes: locks across processes, RELOAD, deferred queues.

Each test builds a small application in a temporary directory, spools
messages as the receiver would (spool, sender's line, wake-up) and runs
``lamson worker`` processes against the private Redis.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lamson import queues, rqcompat
from lamson.envelope import Envelope
from lamson.names import Names
from lamson.order import Lines
from lamson.spool import MaildirSpool
from tests.support import BIN, spawn, stop_process, wait_for

SETTINGS = """\
redis_url = {redis_url!r}
spool_dir = {root!r} + "/run/spool"
undeliverable_dir = {root!r} + "/run/undeliverable"
handlers = {handlers!r}
router_defaults = {{"host": "test\\\\.com"}}
lock_timeout = 30
lock_wait = 120
sweep_grace = 600
state_prefix = "itest:"
reload = {reload!r}
"""

BOOT = """\
from config import settings
from lamson.router import Router

Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = settings.reload
"""

COUNTER = '''\
import os
import time

import redis

from config import settings
from lamson.router import route

conn = redis.Redis.from_url(settings.redis_url)


@route("(address)@(host)", address="count|slow")
def START(message, address=None, host=None):
    started = time.time()
    # A deliberately non-atomic read-modify-write: only the conversation lock keeps it exact.
    n = int(conn.get("counter:" + message.From) or 0)
    time.sleep(0.002 if address == "count" else 0.3)
    conn.set("counter:" + message.From, n + 1)
    conn.rpush("calls", f"{os.getpid()} {message.From} {started} {time.time()} {message['subject']}")
'''


def write_app(root: Path, redis_url: str, handlers: list[str], files: dict[str, str], reload: bool = False,
              extra: str = "") -> None:
    (root / "config").mkdir(parents=True)
    (root / "config" / "__init__.py").write_text("")
    (root / "config" / "settings.py").write_text(
        SETTINGS.format(redis_url=redis_url, root=str(root), handlers=handlers, reload=reload) + extra)
    (root / "config" / "boot.py").write_text(BOOT)
    (root / "app" / "handlers").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "handlers" / "__init__.py").write_text("")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def spool_message(root: Path, conn: redis.Redis, sender: str, rcpt: str, subject: str = "hi",
                  queue: str = "incoming") -> str:
    data = f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    key = MaildirSpool(root / "run" / "spool", sync=False).put(
        Envelope(mail_from=sender, rcpt_tos=(rcpt,), queue=queue), data)
    Lines(conn, Names(), queue).add([(key, sender)])
    queues.wake_router(conn, Names(), queue, [key])
    return key


def worker_args(root: Path, *extra: str) -> list[str]:
    return [str(BIN / "lamson"), "worker", "-root", str(root), "-config", "config.settings", *extra]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for proc in started:
            stop_process(proc)


def run_burst(root: Path, procs: list[subprocess.Popen], count: int, *extra: str, timeout: float = 120) -> None:
    """Run ``count`` burst workers at once and wait for all to finish successfully."""
    batch = [spawn(worker_args(root, *extra, "-burst"), cwd=root, log=root / f"worker{len(procs) + i}.log")
             for i in range(count)]
    procs.extend(batch)
    for proc in batch:
        assert proc.wait(timeout) == 0, (root / "worker0.log").read_text()[-3000:]


def intervals(conn: redis.Redis) -> list[tuple[int, str, float, float]]:
    rows = []
    for raw in conn.lrange("calls", 0, -1):
        pid, sender, start, end, _subject = raw.decode().split()
        rows.append((int(pid), sender, float(start), float(end)))
    return rows


def test_one_conversation_at_a_time_and_in_order_across_two_workers(tmp_path: Path, redis_url: str,
                                                                   redis_conn: redis.Redis, procs: list) -> None:
    write_app(tmp_path, redis_url, ["app.handlers.counter"], {"app/handlers/counter.py": COUNTER})
    for i in range(200):
        spool_message(tmp_path, redis_conn, "Same@Example.org", "count@test.com", subject=str(i))
    run_burst(tmp_path, procs, 2)

    assert int(redis_conn.get("counter:same@example.org")) == 200
    calls = intervals(redis_conn)
    assert len(calls) == 200
    subjects = [int(raw.decode().split()[4]) for raw in redis_conn.lrange("calls", 0, -1)]
    assert subjects == list(range(200)), "one sender's messages handled out of order"
    ordered = sorted(calls, key=lambda c: c[2])
    assert all(a[3] <= b[2] for a, b in zip(ordered, ordered[1:], strict=False)), "calls overlapped"
    assert MaildirSpool(tmp_path / "run" / "spool").keys() == []
    assert [k for k in redis_conn.keys("itest:lock:*")] == []


def test_different_senders_run_in_parallel(tmp_path: Path, redis_url: str, redis_conn: redis.Redis,
                                           procs: list) -> None:
    write_app(tmp_path, redis_url, ["app.handlers.counter"], {"app/handlers/counter.py": COUNTER})
    for i in range(16):
        spool_message(tmp_path, redis_conn, f"sender{i}@example.org", "slow@test.com")
    run_burst(tmp_path, procs, 2)
    calls = intervals(redis_conn)
    assert len(calls) == 16
    overlapping = [(a, b) for a in calls for b in calls
                   if a[0] != b[0] and a[2] < b[3] and b[2] < a[3]]
    assert overlapping, "two workers never ran conversations of different senders at the same time"


RELOADING = '''\
import redis

from config import settings
from lamson.router import route

conn = redis.Redis.from_url(settings.redis_url)


@route("(address)@(host)", address=".+")
def START(message, address=None, host=None):
    conn.rpush("seen", "{word}")
'''


def test_reload_on_file_change_in_a_running_worker(tmp_path: Path, redis_url: str, redis_conn: redis.Redis,
                                                   procs: list) -> None:
    handler = tmp_path / "app" / "handlers" / "live.py"
    write_app(tmp_path, redis_url, ["app.handlers.live"], {"app/handlers/live.py": RELOADING.format(word="one")},
              reload=True)
    procs.append(spawn(worker_args(tmp_path), cwd=tmp_path, log=tmp_path / "worker.log"))
    seen = lambda: [s.decode() for s in redis_conn.lrange("seen", 0, -1)]  # noqa: E731
    spool_message(tmp_path, redis_conn, "a@example.org", "x@test.com")
    wait_for(lambda: seen() == ["one"], 60, what="first message routed")
    spool_message(tmp_path, redis_conn, "a@example.org", "x@test.com")
    wait_for(lambda: seen() == ["one", "one"], 60, what="second message routed by the same code")
    handler.write_text(RELOADING.format(word="two"))  # same size, likely the same second
    spool_message(tmp_path, redis_conn, "a@example.org", "x@test.com")
    wait_for(lambda: seen() == ["one", "one", "two"], 60, what="changed handler reloaded")
    assert "reloaded handler module app.handlers.live" in (tmp_path / "worker.log").read_text()


FRONT = '''\
import redis

from config import settings
from lamson.router import defer, route

conn = redis.Redis.from_url(settings.redis_url)


@route("post-(name)@(host)", name="[a-z]+")
def START(message, name=None, host=None):
    conn.rpush("front", message.From)
    defer(message, queue="posts")
'''

POSTS = '''\
import redis

from config import settings
from lamson.router import route

conn = redis.Redis.from_url(settings.redis_url)


@route("post-(name)@(host)", name="[a-z]+")
def START(message, name=None, host=None):
    conn.rpush("posted", f"{name} {message.From} {message['subject']}")
'''

POSTS_BOOT = """\
from config import settings
from lamson.router import Router

Router.defaults(**settings.router_defaults)
Router.load(["app.handlers.posts"])
"""


def test_deferred_queue_processed_by_a_second_worker_group(tmp_path: Path, redis_url: str,
                                                           redis_conn: redis.Redis, procs: list) -> None:
    write_app(tmp_path, redis_url, ["app.handlers.front"], {
        "app/handlers/front.py": FRONT,
        "app/handlers/posts.py": POSTS,
        "config/posts_boot.py": POSTS_BOOT,
    })
    spool_message(tmp_path, redis_conn, "Writer@Example.org", "post-hello@test.com", subject="first post")
    run_burst(tmp_path, procs, 1)
    assert redis_conn.lrange("front", 0, -1) == [b"writer@example.org"]
    assert redis_conn.lrange("posted", 0, -1) == []
    assert rqcompat.length(redis_conn, "lamson-posts") == 1
    assert MaildirSpool(tmp_path / "run" / "spool").keys() == []
    spool = MaildirSpool(tmp_path / "run" / "spool" / ".posts")  # the posts group's own spool
    (key,) = spool.keys()
    assert spool.get(key).envelope.queue == "posts"

    run_burst(tmp_path, procs, 1, "-queue", "posts", "-boot", "config.posts_boot")
    assert redis_conn.lrange("posted", 0, -1) == [b"hello writer@example.org first post"]
    assert spool.keys() == []


def test_busy_conversation_is_delayed_never_failed_or_lost(tmp_path: Path, redis_url: str,
                                                          redis_conn: redis.Redis, procs: list) -> None:
    write_app(tmp_path, redis_url, ["app.handlers.live"], {"app/handlers/live.py": RELOADING.format(word="done")},
              extra="lock_wait = 0.5\nsweep_grace = 1\nsweep_interval = 1\n")
    # Another process holds this conversation (module app.handlers.live, sender a@example.org).
    held = redis_conn.lock("itest:lock:app.handlers.live\x1fa@example.org", timeout=120, thread_local=False)
    assert held.acquire(blocking=False)
    procs.append(spawn(worker_args(tmp_path), cwd=tmp_path, log=tmp_path / "worker.log"))
    key = spool_message(tmp_path, redis_conn, "A@Example.org", "x@test.com")
    wait_for(lambda: "conversation busy" in (tmp_path / "worker.log").read_text(), 60, what="busy job")
    assert redis_conn.lrange("seen", 0, -1) == []
    # Still in the spool: waiting, or claimed again for the next try (the retry may be under way as we look).
    assert MaildirSpool(tmp_path / "run" / "spool").where(key) in ("waiting", "claimed")
    held.release()
    wait_for(lambda: redis_conn.lrange("seen", 0, -1) == [b"done"], 60, what="message routed after the lock freed")
    wait_for(lambda: MaildirSpool(tmp_path / "run" / "spool").keys() == [], 30, what="spool emptied")
    assert rqcompat.queue(redis_conn, "lamson-incoming").failed_job_registry.count == 0


def test_lamson_routes_command(tmp_path: Path, redis_url: str) -> None:
    from tests.support import run_lamson

    write_app(tmp_path, redis_url, ["app.handlers.front"], {"app/handlers/front.py": FRONT})
    done = run_lamson("routes", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "Routing ORDER: ['^post-(?P<name>[a-z]+)@(?P<host>test\\\\.com)$']" in out, out
    assert "app.handlers.front.START" in out

    done = run_lamson("routes", "-test", "Post-Hello@test.com", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "TEST address 'Post-Hello@test.com' matches:" in out
    assert "{'name': 'hello', 'host': 'test.com'}" in out
    assert "app.handlers.front.START: runs when the sender is in state START" in out

    done = run_lamson("routes", "--test", "nobody@elsewhere.org", cwd=tmp_path)
    assert done.returncode == 1
    assert "matches no route" in done.stdout.decode()
