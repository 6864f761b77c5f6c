"""``lamson wait`` (issue 19, "ready when it says so"): README command 1 returns when mail is accepted."""

from __future__ import annotations

import smtplib
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import Tracker, base_env, kill_pid
from tests.cli.test_check import deploy_conf
from tests.support import BIN, Supervised, make_project, run_lamson, spawn, stop_process, wait_for


def test_wait_names_what_is_not_up_then_returns_once_the_receiver_greets(tmp_path: Path, redis_url: str) -> None:
    project = make_project(tmp_path / "app", redis_url)
    root, port = project["root"], project["receiver_port"]
    env = base_env(root)
    early = run_lamson("wait", "-timeout", "1", "-root", str(root), cwd=root, env=env)
    assert early.returncode == 1
    assert early.stderr.decode().splitlines() == [
        f"lamson wait: not accepting connections after 1s: receiver 127.0.0.1:{port} (supervisord is not running)"]

    receiver = spawn([str(BIN / "lamson"), "receiver", "-root", str(root)], cwd=root, env=env,
                     log=tmp_path / "receiver.log")
    try:
        started = time.monotonic()
        ready = run_lamson("wait", "-timeout", "60", "-root", str(root), cwd=root, env=env, timeout=90)
        assert ready.returncode == 0, ready.stderr
        assert time.monotonic() - started < 60
        assert ready.stdout.decode().startswith("ready after ")
        assert f"receiver 127.0.0.1:{port} accept connections" in ready.stdout.decode()
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:  # nothing refused after it said so
            assert smtp.noop()[0] == 250
    finally:
        stop_process(receiver)


def test_wait_gives_up_at_once_on_a_program_supervisord_gave_up_on(tmp_path: Path, redis_url: str) -> None:
    project = make_project(tmp_path / "app", redis_url)
    root, port = project["root"], project["receiver_port"]
    conf = deploy_conf(root, {"receiver": "false"}, "startsecs=1\nstartretries=1\n")  # FATAL after one retry
    env = base_env(root)
    started = subprocess.run([str(BIN / "supervisord"), "-c", str(conf)], cwd=root, env=env, capture_output=True,
                             text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    sup = Supervised(root, env)
    try:
        began = time.monotonic()
        done = run_lamson("wait", "-timeout", "90", "-root", str(root), cwd=root, env=env, timeout=120)
        assert done.returncode == 1
        assert time.monotonic() - began < 60, done.stderr  # supervisord gives up within seconds; not the timeout
        line = done.stderr.decode().strip()
        assert line.startswith("lamson wait: not accepting connections after "), line
        assert f"receiver 127.0.0.1:{port} (FATAL, see " in line
    finally:
        pids = sup.pids()
        sup.ctl("shutdown")
        daemon = sup.supervisord_pid()
        for pid in [*pids, *([daemon] if daemon else [])]:
            kill_pid(pid)


def test_readme_command_one(generated: Path, project_env: dict[str, str],
                                                                  ports: dict[str, int], tracker: Tracker) -> None:
    """`supervisord -c deploy/supervisord.conf && lamson wait`: the next command's SMTP session is not refused."""
    conf = generated / "deploy" / "supervisord.conf"
    began = time.monotonic()
    started = subprocess.run([str(BIN / "supervisord"), "-c", str(conf)], cwd=generated, env=project_env,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    wait_for(lambda: (generated / "run" / "supervisord.pid").exists(), 30, what="supervisord's pid file")
    tracker.add_pidfiles(generated / "run")
    ready = run_lamson("wait", "-timeout", "120", cwd=generated, env=project_env, timeout=150)
    tracker.add_programs(generated)
    assert ready.returncode == 0, ready.stderr
    out = ready.stdout.decode()
    for name, port in (("receiver", ports["receiver"]), ("log", ports["relay"]), ("redis", ports["redis"])):
        assert f"{name} 127.0.0.1:{port}" in out, out
    assert "a router worker has loaded the application" in out, out
    print(f"supervisord -c to lamson wait's return: {time.monotonic() - began:.1f}s ({out.strip()})")
    # Ready means routing: the status right after says 0 (not 4, "no router worker is alive").
    status = run_lamson("status", cwd=generated, env=project_env, timeout=60)
    assert status.returncode == 0, status.stdout.decode() + status.stderr.decode()
    with smtplib.SMTP("127.0.0.1", ports["receiver"], timeout=30) as smtp:
        assert smtp.ehlo()[0] == 250
