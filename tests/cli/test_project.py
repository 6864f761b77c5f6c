"""The guide's session end to end: gen, pytest, start, send, sendmail, mutt, queue, routes, status, stop.

Every server runs for real (supervisord, the embedded Redis, receiver, router
workers, relay, logging server) on free ports, moved there by the LAMSON_*
variables the generated settings honour.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from lamson import maildir
from tests.cli.conftest import Tracker, pid_alive
from tests.support import BIN, run_lamson, wait_all_running, wait_for


def replies(root: Path) -> list[bytes]:
    folder = root / "run" / "queue"
    return [(folder / "new" / key).read_bytes() for key in maildir.keys(folder, "new")]


def wait_reply(root: Path, needle: bytes, what: str) -> bytes:
    def found() -> bytes | None:
        return next((m for m in replies(root) if needle in m), None)
    return wait_for(found, 45, 0.1, what)


def test_gen_refuses_an_existing_directory_without_force(tmp_path: Path, project_env: dict[str, str]) -> None:
    first = run_lamson("gen", "mymailserver", cwd=tmp_path, env=project_env)
    assert first.returncode == 0
    again = run_lamson("gen", "-project", "mymailserver", cwd=tmp_path, env=project_env)
    assert again.returncode == 1 and b"-FORCE" in again.stderr and len(again.stderr.splitlines()) == 1
    (tmp_path / "mymailserver" / "app" / "handlers" / "sample.py").write_text("broken")
    forced = run_lamson("gen", "-project", "mymailserver", "-FORCE", cwd=tmp_path, env=project_env)
    assert forced.returncode == 0
    assert "def START" in (tmp_path / "mymailserver" / "app" / "handlers" / "sample.py").read_text()
    conf = (tmp_path / "mymailserver" / "deploy" / "supervisord.conf").read_text()
    assert f'PATH="{BIN}:' in conf
    assert f"{BIN}/lamson sendmail" in (tmp_path / "mymailserver" / "muttrc").read_text()


def test_the_guide_session(generated: Path, project_env: dict[str, str], tracker: Tracker, tmp_path: Path) -> None:
    root = generated
    for folder in ("app/handlers", "app/templates", "app/model", "app/data", "config", "deploy", "logs", "run",
                   "tests"):
        assert (root / folder).is_dir(), folder

    def lamson(*args: str, input: bytes | None = None, timeout: float = 90) -> subprocess.CompletedProcess[bytes]:
        return run_lamson(*args, cwd=root, env=project_env, input=input, timeout=timeout)

    # The generated tests pass as generated, with no servers.
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root,
                           env=project_env, capture_output=True, timeout=120)
    assert tests.returncode == 0, tests.stdout.decode() + tests.stderr.decode()

    started = lamson("start")
    tracker.add_pidfiles(root / "run")
    tracker.add_programs(root)
    assert started.returncode == 0, started.stdout.decode() + started.stderr.decode()
    for program in ("redis", "receiver", "router:router_00", "router:router_01", "relay", "log"):
        assert program in started.stdout.decode()
    # `lamson start` returns once the ports answer: the guide's next command may send at once.
    for port in (project_env["LAMSON_RECEIVER_PORT"], project_env["LAMSON_RELAY_PORT"]):
        socket.create_connection(("127.0.0.1", int(port)), timeout=5).close()
    # ... and once a router worker has loaded the application: the status right after says all is well.
    assert lamson("status").returncode == 0

    again = lamson("start")
    assert again.returncode == 1 and b"already running" in again.stderr
    log = lamson("log")  # the guide's next step: the logging server already runs under supervisord
    assert log.returncode == 0 and b"already running under supervisord" in log.stdout

    sent = lamson("send", "-sender", "me@localhost", "-to", "hello@test.com", "-subject", "My test.",
                  "-body", "Hi there.")
    assert sent.returncode == 0, sent.stderr.decode()
    welcome = wait_reply(root, b"X-Original-To: me@localhost", "the reply to lamson send")
    assert b"Subject: Re: My test." in welcome and b"Welcome!" in welcome

    piped = lamson("sendmail", "-oi", "-oem", "--", "hello@test.com",
                   input=b"From: piper@localhost\nTo: hello@test.com\nSubject: piped\n\nvia sendmail\n")
    assert piped.returncode == 0, piped.stderr.decode()
    wait_reply(root, b"X-Original-To: piper@localhost", "the reply to lamson sendmail")

    # Real mutt in batch mode, with the generated muttrc (its sendmail is lamson sendmail).
    mutt = shutil.which("mutt")
    assert mutt, "mutt is not installed (apt-get install mutt)"
    body = tmp_path / "body.txt"
    body.write_text("Hello from mutt.\n")
    with body.open("rb") as stdin:
        muttrun = subprocess.run([mutt, "-F", "muttrc", "-e", "set from=mutt-user@localhost",
                                  "-s", "from mutt", "hello@test.com"], cwd=root, env=project_env, stdin=stdin,
                                 capture_output=True, timeout=60)
    assert muttrun.returncode == 0, muttrun.stderr.decode()
    from_mutt = wait_reply(root, b"X-Original-To: mutt-user@localhost", "the reply to mutt's message")
    assert b"Subject: Re: from mutt" in from_mutt

    # The conversation moved on: a second message gets the GREETED answer.
    lamson("send", "-sender", "me@localhost", "-to", "hello@test.com", "-subject", "Again", "-body", "2")
    wait_reply(root, b"Subject: Re: Again", "the second reply")

    count = lamson("queue", "-count")
    assert count.returncode == 0 and int(count.stdout) == 4
    keys = lamson("queue", "-keys").stdout.decode().split()
    assert len(keys) == 4
    got = lamson("queue", "-get", keys[0])
    assert got.returncode == 0 and got.stdout in replies(root)

    routes = lamson("routes", "-test", "hello@test.com")
    assert routes.returncode == 0, routes.stderr.decode()
    assert b"Routing ORDER" in routes.stdout and b"app.handlers.sample.START" in routes.stdout
    nowhere = lamson("routes", "-test", "hello@elsewhere.org")
    assert nowhere.returncode == 1

    status = lamson("status")
    assert status.returncode == 0
    text = status.stdout.decode()
    assert "receiver" in text and "RUNNING" in text and "lamson-incoming" in text and "run/queue" in text
    assert "waiting 0, in flight 0" in text  # the spool and the outbox, drained
    # A program that is not running is a non-zero status (a monitoring check can rely on it).
    ctl = [str(BIN / "supervisorctl"), "-c", str(root / "deploy" / "supervisord.conf")]
    subprocess.run([*ctl, "stop", "relay"], cwd=root, env=project_env, capture_output=True, timeout=60)
    assert lamson("status").returncode == 1
    subprocess.run([*ctl, "start", "relay"], cwd=root, env=project_env, capture_output=True, timeout=60)
    assert lamson("status").returncode == 0

    program_pids = {int(p) for p in re.findall(r"pid (\d+)", text)}
    assert len(program_pids) >= 8  # supervisord and its seven processes
    stopped = lamson("stop", "-ALL", "run", timeout=200)
    assert stopped.returncode == 0, stopped.stderr.decode()
    assert b"Stopping processes with the following PID files: ['run/supervisord.pid']" in stopped.stdout
    assert b"Attempting to stop lamson at pid" in stopped.stdout
    assert list((root / "run").glob("*.pid")) == []
    for pid in tracker.pids | program_pids:
        assert not pid_alive(pid), pid
    assert lamson("status").returncode == 3

    # supervisord straight from the config, with no virtualenv on PATH: the baked PATH finds lamson.
    bare_env = dict(project_env, PATH="/usr/bin:/bin")
    direct = subprocess.run([str(BIN / "supervisord"), "-c", "deploy/supervisord.conf"], cwd=root, env=bare_env,
                            capture_output=True, timeout=60)
    assert direct.returncode == 0, direct.stderr.decode()
    wait_for(lambda: (root / "run" / "supervisord.pid").exists(), 20, what="supervisord.pid")
    tracker.add_pidfiles(root / "run")
    wait_all_running(lambda: lamson("status").stdout.decode(), 8, root / "logs")
    tracker.add_programs(root)

    restarted = lamson("restart", timeout=200)
    tracker.add_pidfiles(root / "run")
    tracker.add_programs(root)
    assert restarted.returncode == 0, restarted.stdout.decode() + restarted.stderr.decode()
    assert b"Attempting to stop lamson at pid" in restarted.stdout and b"supervisord started" in restarted.stdout

    assert lamson("stop", timeout=200).returncode == 0
    assert not (root / "run" / "supervisord.pid").exists()
    assert os.listdir(root / "run" / "queue" / "new")


def test_start_refuses_a_port_already_in_use(generated: Path, project_env: dict[str, str],
                                             ports: dict[str, int]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["receiver"]))
        squatter.listen()
        result = run_lamson("start", cwd=generated, env=project_env)
    assert result.returncode == 1
    assert f"127.0.0.1:{ports['receiver']} is already in use".encode() in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (generated / "run" / "supervisord.pid").exists()
