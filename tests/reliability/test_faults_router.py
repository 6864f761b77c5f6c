"""Router workers under faults: a killed lock holder, poison messages, a worker killed by its message.

The application is written into a temporary directory and run by real
``lamson worker`` processes against the private Redis (the helpers of
tests/router/test_workers.py, imported).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import redis

from lamson import maildir, queues
from lamson.names import Names
from lamson.requeue import requeue
from lamson.spool import MaildirSpool
from tests.router.test_workers import procs, spool_message, worker_args, write_app  # noqa: F401 - procs: fixture
from tests.support import run_lamson, spawn, stop_process, wait_for

FAST = """
lock_timeout = 3
lock_wait = 1
sweep_grace = 1
sweep_interval = 1
route_retries = [1, 1]
max_attempts = 3
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
    if address == "hang" and conn.incr("hangs") == 1:
        time.sleep(120)  # the first time only: its worker is killed meanwhile
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
    # The dead worker's claim comes back at the survivor's next sweep, and alice's messages are
    # handled in order once the lock has expired: the one it held first, then the next.
    wait_for(lambda: "note alice@example.org" in handled(redis_conn), 3 + 15, 0.1,
             "alice's next message within lock_timeout + a few seconds")
    assert time.monotonic() - killed_at < 3 + 15
    assert handled(redis_conn).index("hang alice@example.org") < handled(redis_conn).index("note alice@example.org")
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


def test_an_unreadable_record_is_parked_with_the_reason_and_the_rest_flows(
        tmp_path: Path, redis_url: str, redis_conn: redis.Redis, procs: list) -> None:  # noqa: F811
    root = app(tmp_path, redis_url)
    spool = MaildirSpool(root / "run" / "spool")
    # A record the job cannot read (a bad envelope line): not a handler's failure, and no retry helps.
    key = maildir.write(spool.path, b"{not json\nFrom: x@example.org\r\n\r\nbody\r\n")
    queues.wake_router(redis_conn, Names(), "incoming", [key])
    procs.append(spawn(worker_args(root), cwd=root, log=root / "worker.log"))
    spool_message(root, redis_conn, "user@example.org", "note@test.com")
    wait_for(lambda: "note user@example.org" in handled(redis_conn), 30, 0.2, "the other message")
    parked = root / "run" / "undeliverable" / "new"
    wait_for(lambda: parked.exists() and list(parked.iterdir()), 30, 0.2, "the bad record parked")
    (found,) = parked.iterdir()
    assert b"X-Lamson-Reason: unreadable spool record" in found.read_bytes()
    assert b"{not json" in found.read_bytes()  # kept as it was, for whoever repairs it
    assert spool.keys() == [] and spool.claims() == []


def test_a_message_that_kills_its_worker_is_parked_after_max_attempts(
        tmp_path: Path, redis_url: str, redis_conn: redis.Redis, procs: list) -> None:  # noqa: F811
    root = app(tmp_path, redis_url)
    spool_message(root, redis_conn, "mallory@example.org", "fatal@test.com")
    spool_message(root, redis_conn, "user@example.org", "note@test.com")
    parked = root / "run" / "undeliverable" / "new"
    # Play supervisord: start the worker again whenever it dies; the new one takes back the dead one's claim.
    for _ in range(6):
        proc = spawn(worker_args(root), cwd=root, log=root / "worker.log")
        procs.append(proc)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline and not (parked.exists() and any(parked.iterdir())):
            time.sleep(0.1)
        if parked.exists() and any(parked.iterdir()):
            break
    (found,) = parked.iterdir()
    assert b"X-Lamson-Reason: 3 attempts failed" in found.read_bytes()
    starts = [x.decode().split()[0] for x in redis_conn.lrange("started", 0, -1)]
    assert starts.count("fatal") == 3  # run max_attempts times: the third death parks it
    wait_for(lambda: "note user@example.org" in handled(redis_conn), 30, 0.2, "the other message")
    # Fixed (here: the handler no longer kills), the operator sends it back and it is handled.
    (root / "app" / "handlers" / "faulty.py").write_text(FAULTY.replace("os._exit(3)", "pass"))
    for proc in procs:
        stop_process(proc)
    procs.append(spawn(worker_args(root), cwd=root, log=root / "worker.log"))
    requeue(found.read_bytes(), _settings(root), redis_conn)
    wait_for(lambda: "fatal mallory@example.org" in handled(redis_conn), 30, 0.2, "the requeued message")


def _settings(root: Path):  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from lamson.settings import DEFAULTS

    return SimpleNamespace(**{**DEFAULTS, "spool_dir": str(root / "run" / "spool")})


def test_a_handler_that_fails_to_import_is_retried_until_fixed(
        tmp_path: Path, redis_url: str, redis_conn: redis.Redis, procs: list) -> None:  # noqa: F811
    root = app(tmp_path, redis_url)
    (root / "config" / "settings.py").write_text((root / "config" / "settings.py").read_text() + "boot_retry = 1\n")
    good = (root / "app" / "handlers" / "faulty.py").read_text()
    (root / "app" / "handlers" / "faulty.py").write_text(good + "\ndef broken(:\n")  # a syntax error
    worker = spawn(worker_args(root), cwd=root, log=root / "worker.log")
    procs.append(worker)
    spool_message(root, redis_conn, "user@example.org", "note@test.com")
    wait_for(lambda: "cannot load the application (SyntaxError" in (root / "worker.log").read_text(), 30, 0.1,
             "the import error reported")
    time.sleep(2.5)  # retried, still failing, still running
    assert worker.poll() is None and handled(redis_conn) == []
    (root / "app" / "handlers" / "faulty.py").write_text(good)  # the operator fixes it
    wait_for(lambda: "note user@example.org" in handled(redis_conn), 30, 0.1, "the message routed after the fix")
    assert worker.poll() is None  # the same process: nothing had to be restarted by hand
