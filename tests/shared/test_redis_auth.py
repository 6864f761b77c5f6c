"""The embedded Redis's credentials (lamson.connection, lamson.settings, lamson.redis_server) and
the worker's job class (lamson.rqcompat.WakeUp): docs/security.md, "Redis"."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from rq import Queue

from lamson import rqcompat
from lamson.connection import ensure_password, redact, url_password, with_credentials, with_password
from lamson.redis_server import auth_config
from tests.support import BIN, free_port, make_project, spawn, stop_process, wait_port


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6379/0", "redis://default:s%2Fp@127.0.0.1:6379/0"),
    ("rediss://cache.example.org:6380/2", "rediss://default:s%2Fp@cache.example.org:6380/2"),
    ("redis://app@127.0.0.1/0", "redis://app:s%2Fp@127.0.0.1/0"),
    ("redis://[::1]:6379/0", "redis://default:s%2Fp@[::1]:6379/0"),
    ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1&password=s%2Fp"),
    ("redis://:mine@127.0.0.1/0", "redis://:mine@127.0.0.1/0"),  # its own password wins
])
def test_with_password(url: str, expected: str) -> None:
    filled = with_password(url, "s/p")
    assert filled == expected
    assert url_password(filled) in ("s/p", "mine")
    assert "s/p" not in redact(filled) and "s%2Fp" not in redact(filled) and "mine" not in redact(filled)


def test_ensure_password_is_0600_generated_once_even_when_raced(tmp_path: Path) -> None:
    path = tmp_path / "run" / "redis.pass"
    with ThreadPoolExecutor(8) as pool:
        got = set(pool.map(lambda _: ensure_password(path), range(8)))
    assert len(got) == 1 and len(got.pop()) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["redis.pass"]  # no temporary file left


def test_settings_fill_in_the_generated_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAMSON_REDIS_URL", raising=False)
    assert with_credentials("redis://127.0.0.1:1/0", "run") == "redis://127.0.0.1:1/0"  # no file yet
    password = ensure_password(tmp_path / "run" / "redis.pass")
    assert with_credentials("redis://127.0.0.1:1/0", "run") == f"redis://default:{password}@127.0.0.1:1/0"
    assert with_credentials("redis://u:given@127.0.0.1:1/0", "run") == "redis://u:given@127.0.0.1:1/0"
    # The file under the project root serves `lamson status -root PROJECT` run from elsewhere.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert url_password(with_credentials("redis://127.0.0.1:1/0", "run", tmp_path)) == password


def test_auth_config_requirepass_or_an_acl_user(tmp_path: Path) -> None:
    assert auth_config("redis://:se\"cret@127.0.0.1/0", str(tmp_path)) == 'requirepass "se\\"cret"\n'
    assert not (tmp_path / "redis.pass").exists()  # the URL's password: nothing generated
    acl = auth_config("redis://app:pw@127.0.0.1/0", str(tmp_path))
    assert acl == 'user default off\nuser "app" on ">pw" ~* &* +@all\n'
    generated = auth_config("redis://127.0.0.1/0", str(tmp_path))
    assert generated == f'requirepass "{(tmp_path / "redis.pass").read_text().strip()}"\n'


def test_a_password_in_redis_url_is_applied_to_the_embedded_redis(tmp_path: Path) -> None:
    port = free_port()
    project = make_project(tmp_path / "app", f"redis://:given-secret@127.0.0.1:{port}/0")
    (project["root"] / "deploy").mkdir()
    (project["root"] / "deploy" / "redis.conf").write_text(
        (Path(__file__).resolve().parents[2] / "deploy" / "redis.conf").read_text())
    proc = spawn([str(BIN / "lamson"), "redis"], cwd=project["root"], env={"LAMSON_REDIS_URL": ""},
                 log=tmp_path / "redis.out")
    try:
        wait_port(port, timeout=20)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        assert redis.Redis.from_url(f"redis://:given-secret@127.0.0.1:{port}/0").ping()
        assert not (project["root"] / "run" / "redis.pass").exists()
        assert b"given-secret" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        url = subprocess.run([str(BIN / "lamson"), "redis-url"], cwd=project["root"], capture_output=True,
                             text=True, env={**os.environ, "LAMSON_REDIS_URL": ""})
        assert url.stdout.strip() == f"redis://:given-secret@127.0.0.1:{port}/0"
    finally:
        stop_process(proc)


def test_workers_run_lamson_jobs_only_and_drop_unreadable_ones(redis_conn: redis.Redis, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    queue = Queue("t-hostile", connection=redis_conn, serializer=rqcompat.SERIALIZER)
    evil = queue.enqueue_call(func="os.system", args=[f"touch {marker}"])
    redis_conn.hset("rq:job:bad-date", mapping={"created_at": "yesterday", "status": "queued",
                                                "data": zlib.compress(json.dumps(["os.getcwd", None, [], {}]).encode())})
    redis_conn.rpush("rq:queue:t-hostile", "bad-date")
    worker = rqcompat.Worker([queue], connection=redis_conn, serializer=rqcompat.SERIALIZER,
                             job_class=rqcompat.WakeUp, name="t.test.h.1.wakeup")
    assert worker.work(burst=True) is not None  # returned: not ended by an exception
    assert not marker.exists()
    assert evil.id in queue.failed_job_registry.get_job_ids()
    assert not redis_conn.exists("rq:job:bad-date") and queue.count == 0


def test_unavailable_tells_redis_trouble_from_other_errors() -> None:
    import redis

    from lamson.connection import unavailable

    assert unavailable(redis.ConnectionError("down"))
    assert unavailable(redis.ResponseError("MISCONF Errors writing to the AOF file"))
    assert unavailable(redis.ResponseError("Command # 1 (HSET k f v) of pipeline caused error: NOREPLICAS Not enough"))
    try:
        try:
            raise redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'")
        except redis.ResponseError:
            raise redis.exceptions.ExecAbortError("Transaction discarded because of previous errors") from None
    except redis.exceptions.ExecAbortError as exc:
        assert not unavailable(exc)  # "from None" hides the cause: nothing to go on
    try:
        try:
            raise redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'")
        except redis.ResponseError:
            raise redis.exceptions.ExecAbortError("Transaction discarded because of previous errors")  # noqa: B904
    except redis.exceptions.ExecAbortError as exc:
        assert unavailable(exc)
    assert not unavailable(redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"))
    assert not unavailable(ValueError("x"))
