"""Redis is a trust boundary (docs/design.md, invariant 6), attacked on the real deployment.

The demo's deploy/supervisord.conf runs under supervisord on free ports
(tests/e2e/conftest.py), its embedded Redis started by ``lamson redis`` with
the password it generates into run/redis.pass, as on a fresh machine. Another
local user (``nobody``) tries to plant a job and read keys over loopback
without the password; jobs that are malformed, name a function that is not a
Lamson job, or carry a pickle are planted with the password (what an attacker
who had it could do): none runs code, each is logged and dropped, and the
workers go on handling mail. docs/security.md, "Redis", lists each check.
"""

from __future__ import annotations

import os
import pwd
import shutil
import smtplib
import stat
import subprocess
import time
import uuid
import zlib
from pathlib import Path

import redis
from rq import Queue

from lamson import maildir, rqcompat
from lamson.connection import url_password
from lamson.names import Names
from tests.e2e.conftest import Pipeline
from tests.support import BIN, wait_for

ATTACK = [
    ["HSET", "rq:job:evil", "data", "x", "status", "queued"],
    ["LPUSH", "rq:queue:lamson-incoming", "evil"],
    ["KEYS", "*"],
    ["GET", "lamson:anything"],
    ["CONFIG", "SET", "dir", "/tmp"],
]


def as_nobody() -> dict[str, int]:
    # The suite runs as root (as CI does): these fail loudly instead of skipping when it does not.
    assert os.geteuid() == 0, "this test acts as another OS user: run the suite as root"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        raise AssertionError("no user nobody on this machine: the attack test needs an unprivileged user") from None
    return {"user": "nobody", "group": pwd.getpwnam("nobody").pw_gid}


def redis_pid(pipeline: Pipeline) -> int:
    return int(pipeline.ctl("pid", "redis").strip())


def test_another_user_cannot_plant_a_job_or_read_keys_without_the_password(pipeline: Pipeline) -> None:
    who = as_nobody()
    cli = shutil.which("redis-cli")
    assert cli, "redis-cli comes with redis-server (redis-tools)"
    port = str(pipeline.ports["redis"])
    for command in ATTACK:
        out = subprocess.run([cli, "-h", "127.0.0.1", "-p", port, *command], capture_output=True, text=True,
                             timeout=30, **who)
        assert "NOAUTH" in out.stdout + out.stderr, (command, out.stdout, out.stderr)
    # A raw RESP session from the system's Python, as nobody: the same answer, nothing stored.
    raw = (f"import socket; s = socket.create_connection(('127.0.0.1', {port})); "
           "s.sendall(b'*3\\r\\n$4\\r\\nSADD\\r\\n$9\\r\\nrq:queues\\r\\n$4\\r\\nevil\\r\\n'); "
           "print(s.recv(200))")
    out = subprocess.run(["/usr/bin/python3", "-c", raw], capture_output=True, text=True, timeout=30, **who)
    assert "NOAUTH" in out.stdout, out.stderr

    conn = redis.Redis.from_url(pipeline.redis_url)
    assert not conn.exists("rq:job:evil") and conn.sismember("rq:queues", "evil") == 0
    assert conn.config_get("protected-mode") == {"protected-mode": "yes"}
    password = url_password(pipeline.redis_url)
    assert password and len(password) >= 32
    assert conn.config_get("requirepass")["requirepass"] == password
    # The password is in a file only its owner reads, and never on a command line (ps shows those to all).
    secret = pipeline.root / "run" / "redis.pass"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert password.encode() not in Path(f"/proc/{redis_pid(pipeline)}/cmdline").read_bytes()
    assert conn.client_list()  # the pipeline's own processes are connected with it


def test_every_lamson_tool_gets_the_password_without_typing_it(pipeline: Pipeline) -> None:
    env = dict(pipeline.env)
    url = subprocess.run([str(BIN / "lamson"), "redis-url"], cwd=pipeline.root, env=env, capture_output=True,
                         text=True, timeout=60)
    assert url.returncode == 0 and url.stdout.strip() == pipeline.redis_url, url.stderr
    status = subprocess.run([str(BIN / "lamson"), "status"], cwd=pipeline.root, env=env, capture_output=True,
                            text=True, timeout=60)
    assert "lamson-incoming" in status.stdout and "not reachable" not in status.stdout, status.stdout
    assert url_password(pipeline.redis_url) not in status.stdout + status.stderr
    # rq's own tools: the documented one addition.
    info = subprocess.run([str(BIN / "rq"), "info"], cwd=pipeline.root, capture_output=True, text=True, timeout=60,
                          env={**env, "RQ_REDIS_URL": url.stdout.strip()})
    assert info.returncode == 0 and "lamson-incoming" in info.stdout, info.stderr
    plain = subprocess.run([str(BIN / "rq"), "info", "-u", f"redis://127.0.0.1:{pipeline.ports['redis']}/0"],
                           cwd=pipeline.root, capture_output=True, text=True, timeout=60, env=env)
    assert plain.returncode != 0 or "lamson-incoming" not in plain.stdout


def router_pids(pipeline: Pipeline) -> list[int]:
    return sorted(int(pipeline.ctl("pid", f"router:router_0{n}").strip()) for n in (0, 1))


def send_and_get_reply(pipeline: Pipeline) -> None:
    sender = f"probe-{uuid.uuid4().hex[:8]}@example.org"
    with smtplib.SMTP("127.0.0.1", pipeline.ports["receiver"], timeout=60) as smtp:
        smtp.sendmail(sender, ["hello@test.com"],
                      f"From: {sender}\r\nTo: hello@test.com\r\nSubject: after the attack\r\n\r\nHello.\r\n")
    queue = pipeline.root / "run" / "queue"

    def replied() -> bool:
        return any(sender.encode() in (queue / "new" / k).read_bytes() for k in maildir.keys(queue))

    wait_for(replied, 60, 0.2, f"a reply to {sender}")


def test_malformed_and_hostile_jobs_are_logged_and_dropped_and_workers_keep_running(pipeline: Pipeline,
                                                                                     tmp_path: Path) -> None:
    conn = redis.Redis.from_url(pipeline.redis_url)
    routers = router_pids(pipeline)
    assert len(routers) == 2
    marker = tmp_path / "pwned"
    incoming = Names().incoming
    planted = []

    def plant(**fields: bytes | str) -> None:
        """A job hash written straight into Redis (what HSET + LPUSH can do), then queued."""
        job_id = f"evil-{len(planted)}"
        base = {"created_at": "2026-11-30T00:00:00.000000Z", "status": "queued", "origin": incoming,
                "description": "planted", "timeout": "30"}
        base.update(fields)
        conn.hset(f"rq:job:{job_id}", mapping=base)
        conn.rpush(f"rq:queue:{incoming}", job_id)
        planted.append(job_id)

    def job(func: str, args: list) -> bytes:
        import json
        return zlib.compress(json.dumps([func, None, args, {}]).encode())

    plant(data=b"not zlib, not JSON")
    plant(data=zlib.compress(b"\x80\x04\x95 a pickle would be here"))
    # A real pickle whose loading runs a shell command: rq's JSON serializer never unpickles it.
    plant(data=zlib.compress(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."))
    # Valid JSON naming a function that is not a Lamson job: refused, not imported, not run.
    plant(data=job("os.system", [f"touch {marker}"]))
    plant(data=job("subprocess.call", [["touch", str(marker)]]))
    # Lamson's own job with arguments that make no sense.
    plant(data=job("lamson.workers.jobs.route", ["not a list", 7]))
    plant(data=job("lamson.workers.jobs.route", [["../../etc/passwd"], "incoming"]))
    plant()  # no data at all
    plant(data=job("os.system", ["true"]), created_at="yesterday", timeout="soon", status="weird")
    conn.rpush(f"rq:queue:{incoming}", "no-such-job")  # an id with no hash
    # And through rq's own API (JSON serializer), as a client with the password would enqueue it.
    Queue(incoming, connection=conn, serializer=rqcompat.SERIALIZER).enqueue_call(func="os.system",
                                                                                  args=[f"touch {marker}"])

    wait_for(lambda: conn.llen(f"rq:queue:{incoming}") == 0, 60, 0.2, "the planted jobs taken off the queue")
    send_and_get_reply(pipeline)  # the workers still route mail
    assert not marker.exists(), "a planted job ran code"
    time.sleep(2)  # a worker that quit would be gone (and restarted with another pid) by now
    assert router_pids(pipeline) == routers
    logs = "".join((pipeline.root / "logs" / f"router_0{n}.log").read_text(errors="replace") for n in (0, 1))
    assert "os.system" in logs and "not a Lamson job" in logs  # the refusal names what was refused
    assert "unreadable job evil-" in logs
    assert "quitting" not in logs and "exited: router" not in (pipeline.root / "logs" / "supervisord.log").read_text()
    for job_id in planted:
        assert not conn.exists(f"rq:queue:{incoming}") or job_id.encode() not in conn.lrange(f"rq:queue:{incoming}", 0, -1)


def test_files_under_run_and_logs_are_the_owners_only(pipeline: Pipeline) -> None:
    """umask 077 (supervisord's umask=077, and `lamson redis`): spool, outbox, queue, AOF, pid files,
    the password and the logs are 0600, their folders 0700 (issue 11, item 9)."""
    send_and_get_reply(pipeline)
    aof = list((pipeline.root / "run").glob("appendonlydir/*"))
    assert aof and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in aof), aof
    # supervisord opens its own log before it applies umask=077: `lamson start` starts it with
    # umask 077 and scripts/setup, lamson gen and lamson start make logs/ itself 0700 (here the
    # fixture made run/ and logs/, so those two folders are the test's).
    exempt = {pipeline.root / "logs" / "supervisord.log"}
    seen = []
    for top in ("run", "logs"):
        for path in (pipeline.root / top).rglob("*"):
            if path in exempt or path.is_symlink():
                continue
            mode = stat.S_IMODE(path.lstat().st_mode)
            assert mode & 0o077 == 0, f"{path.relative_to(pipeline.root)} is {oct(mode)}"
            seen.append(path.relative_to(pipeline.root).as_posix())
    for expected in ("run/redis.pass", "run/supervisord.pid", "run/spool/new", "run/queue/new",
                     "logs/lamson.log", "logs/router_00.log", "logs/redis.log"):
        assert expected in seen, expected
