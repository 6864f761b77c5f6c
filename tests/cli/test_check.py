"""``lamson check``: settings, Redis, smart host and folders checked without starting anything."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Tracker, base_env, kill_pid, pid_alive
from tests.support import free_port, make_project, run_lamson


@pytest.fixture
def smart_host() -> Iterator[int]:
    """A listening TCP socket standing in for the smart host (a connect is all check does)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def check(root: Path, *extra: str) -> tuple[int, list[str]]:
    done = run_lamson("check", "-root", str(root), *extra, cwd=root, env=base_env(root))
    assert done.stderr == b"", done.stderr
    assert b"Traceback" not in done.stdout
    return done.returncode, done.stdout.decode().splitlines()


def test_a_sound_project_checks_clean(tmp_path: Path, redis_url: str, smart_host: int) -> None:
    project = make_project(tmp_path / "app", redis_url, relay_port=smart_host)
    code, out = check(project["root"])
    assert code == 0, out
    assert out == ["settings OK; Redis, smart host and folders reachable"]
    assert not list(project["root"].rglob(".lamson-check-*"))  # the probe files are gone


def test_typos_and_types_one_line_each_warnings_alone_exit_zero(tmp_path: Path, redis_url: str,
                                                                 smart_host: int) -> None:
    project = make_project(tmp_path / "app", redis_url, relay_port=smart_host,
                           extra="relay_confg = {'host': 'smtp.example.org', 'port': 25}\nroute_retries = {10, 60}\n")
    code, out = check(project["root"])
    assert code == 0, out
    assert out == [
        "warning: relay_confg: unknown setting, did you mean relay_config?",
        "warning: route_retries: is a set, which has no order; a list is expected",
        "0 error(s), 2 warning(s)",
    ]


def test_errors_exit_non_zero(tmp_path: Path, redis_url: str, smart_host: int) -> None:
    project = make_project(tmp_path / "app", redis_url, relay_port=smart_host,
                           extra="max_attempts = '5'\nhandlers = 'app.handlers.sample'\n")
    code, out = check(project["root"])
    assert code == 1
    assert "error: max_attempts: must be an integer, not '5' (a str)" in out
    assert "error: handlers: must be a list, not 'app.handlers.sample' (a str)" in out
    assert out[-1] == "2 error(s), 0 warning(s)"


def test_a_port_that_cannot_load_is_still_one_line(tmp_path: Path, redis_url: str) -> None:
    project = make_project(tmp_path / "app", redis_url, extra="relay_config = {'host': '127.0.0.1', 'port': '25'}\n")
    code, out = check(project["root"])
    assert code == 1
    assert "error: relay_config['port']: must be an integer port number, not '25' (a str)" in out
    assert "(services not checked: the settings do not load)" in out


def test_unreachable_redis_smart_host_and_unwritable_spool(tmp_path: Path) -> None:
    dead = free_port()
    project = make_project(tmp_path / "app", f"redis://127.0.0.1:{dead}/0", relay_port=free_port())
    blocker = project["root"] / "notadir"
    blocker.write_text("a file where the outbox should be")
    settings = project["root"] / "config" / "settings.py"
    settings.write_text(settings.read_text() + "outbox_dir = 'notadir/outbox'\n")
    code, out = check(project["root"], "-timeout", "1")
    assert code == 1
    assert any(line.startswith(f"error: redis_url: Redis at redis://127.0.0.1:{dead}/0 does not answer PING")
               for line in out), out
    assert any(line.startswith(f"error: relay_config: smart host 127.0.0.1:{project['relay_port']} does not "
                               "accept connections") for line in out), out
    assert any(line.startswith("error: outbox_dir: notadir/outbox is not writable") for line in out), out
    assert out[-1] == "3 error(s), 0 warning(s)"


def test_offline_checks_only_the_settings(tmp_path: Path) -> None:
    project = make_project(tmp_path / "app", f"redis://127.0.0.1:{free_port()}/0")
    code, out = check(project["root"], "-offline")
    assert code == 0 and out == ["settings OK"]


def test_the_start_logs_carry_the_same_lines(tmp_path: Path, redis_url: str) -> None:
    """Every stage loads settings through lamson.settings.load: the warning reaches its log (stderr)."""
    project = make_project(tmp_path / "app", redis_url, extra="relay_confg = {'host': 'x', 'port': 25}\n")
    done = run_lamson("routes", "-root", str(project["root"]), "-test", "hello@test.com",
                      cwd=project["root"], env=base_env(project["root"]))
    assert b"relay_confg: unknown setting, did you mean relay_config?" in done.stderr


def deploy_conf(root: Path, programs: dict[str, str], options: str = "startsecs=0\nautorestart=false\n") -> Path:
    """A deploy/supervisord.conf for ``root`` with these programs (its own socket and pid file in run/)."""
    run = root / "run"
    run.mkdir(exist_ok=True)
    text = (f"[unix_http_server]\nfile={run}/supervisor.sock\nchmod=0700\n\n"
            f"[supervisorctl]\nserverurl=unix://{run}/supervisor.sock\n\n"
            "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[supervisord]\ndirectory={root}\nlogfile={root}/supervisord.log\npidfile={run}/supervisord.pid\n"
            f"childlogdir={root}\n")
    for name, command in programs.items():
        text += f"\n[program:{name}]\ncommand={command}\n{options}"
    conf = root / "deploy" / "supervisord.conf"
    conf.parent.mkdir(exist_ok=True)
    conf.write_text(text)
    return conf


def test_before_the_first_start_what_lamson_start_starts_is_a_note(tmp_path: Path) -> None:
    """Issue 19: `lamson check && lamson start` on a fresh project: the embedded Redis and the log server
    are not running before the start, and that is no error; anything else that does not answer is."""
    dead = free_port()
    project = make_project(tmp_path / "app", f"redis://127.0.0.1:{dead}/0", relay_port=free_port())
    root = project["root"]
    deploy_conf(root, {"redis": "lamson redis -conf deploy/redis.conf", "log": "lamson log -foreground",
                       "queue": "lamson worker -boot config.queue"})
    code, out = check(root, "-timeout", "1")
    assert code == 0, out
    assert out == [
        f"note: redis_url: Redis at redis://127.0.0.1:{dead}/0 is not running yet: started by lamson start "
        "(program redis of deploy/supervisord.conf)",
        f"note: relay_config: the logging server (smart host 127.0.0.1:{project['relay_port']}) is not running "
        "yet: started by lamson start (program log of deploy/supervisord.conf)",
        "settings OK; folders writable; the rest is started by lamson start",
    ]

    # A log program on another port is not the smart host; without a redis program, Redis is someone else's.
    deploy_conf(root, {"log": f"lamson log -foreground -port {free_port()}"})
    code, out = check(root, "-timeout", "1")
    assert code == 1
    assert out[0].startswith(f"error: redis_url: Redis at redis://127.0.0.1:{dead}/0 does not answer PING"), out
    assert out[1] == (f"error: relay_config: smart host 127.0.0.1:{project['relay_port']} does not accept "
                      "connections: Connection refused"), out


def test_once_supervisord_runs_a_redis_that_does_not_answer_is_an_error(tmp_path: Path) -> None:
    """After `lamson start` nothing is "started later": a program that should answer and does not is an error."""
    from tests.support import BIN, Supervised, wait_for

    dead = free_port()
    project = make_project(tmp_path / "app", f"redis://127.0.0.1:{dead}/0", relay_port=free_port())
    root = project["root"]
    conf = deploy_conf(root, {"redis": "sleep 120", "log": "sleep 120"})  # running, never answering
    env = base_env(root)
    started = subprocess.run([str(BIN / "supervisord"), "-c", str(conf)], cwd=root, env=env, capture_output=True,
                             text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    sup = Supervised(root, env)
    try:
        wait_for(lambda: sup.ctl("status").count("RUNNING") == 2, 60, 0.2, "both programs RUNNING")
        code, out = check(root, "-timeout", "1")
        assert code == 1, out
        assert out[0].startswith(f"error: redis_url: Redis at redis://127.0.0.1:{dead}/0 does not answer PING"), out
        assert out[1].startswith(f"error: relay_config: smart host 127.0.0.1:{project['relay_port']} does not"), out
        assert out[-1] == "2 error(s), 0 warning(s)"
    finally:
        pids = sup.pids()
        sup.ctl("shutdown")
        daemon = sup.supervisord_pid()
        for pid in [*pids, *([daemon] if daemon else [])]:
            kill_pid(pid)


@pytest.mark.parametrize("program", [
    ["receiver"], ["worker"], ["worker", "-queue", "posts"], ["relay"], ["metrics"], ["log", "-foreground"],
], ids=lambda argv: " ".join(argv))
def test_every_program_refuses_to_start_with_a_wrong_setting(tmp_path: Path, redis_url: str,
                                                             program: list[str]) -> None:
    """Issue 19: max_message_size = "10MB" used to start a receiver that dropped every connection.

    Each program supervisord runs exits 1 at once with one line naming the setting (supervisord
    then marks it FATAL after its retries), whatever part of the settings it uses itself.
    """
    project = make_project(tmp_path / "app", redis_url, extra="max_message_size = '10MB'\n")
    env = base_env(project["root"], LAMSON_METRICS_PORT=str(free_port()))
    done = run_lamson(*program, "-root", str(project["root"]), cwd=project["root"], env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"lamson {program[0]}: ")
    assert "config/settings.py: max_message_size: must be an integer number of bytes" in lines[0]
    assert "'10MB' (a str)" in lines[0]
    assert not (project["root"] / "run" / "spool").exists()  # it stopped before touching anything


def test_start_checks_the_settings_first_and_starts_nothing(generated: Path, project_env: dict[str, str]) -> None:
    settings = generated / "config" / "settings.py"
    settings.write_text(settings.read_text() + "\nmax_message_size = '10MB'\nrelay_confg = {'host': 'x'}\n")
    done = run_lamson("start", cwd=generated, env=project_env, timeout=120)
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "relay_confg: unknown setting, did you mean relay_config?" in err  # the warning, logged
    last = err.splitlines()[-1]
    assert last.startswith("lamson start: config/settings.py: max_message_size: must be an integer"), err
    assert "Traceback" not in err
    assert not (generated / "run" / "supervisord.pid").exists()
    assert not (generated / "run" / "supervisor.sock").exists()
    # `lamson check` says the same, with everything else it finds.
    check_done = run_lamson("check", "-offline", cwd=generated, env=project_env)
    assert check_done.returncode == 1
    assert b"error: max_message_size: must be an integer number of bytes" in check_done.stdout


def test_restart_refuses_a_settings_error_before_stopping_anything(generated: Path, project_env: dict[str, str],
                                                                   ports: dict[str, int], tracker: Tracker) -> None:
    """`lamson restart` after editing settings.py: a typo must not turn into an outage."""
    started = run_lamson("start", cwd=generated, env=project_env, timeout=180)
    tracker.add_pidfiles(generated / "run")
    tracker.add_programs(generated)
    assert started.returncode == 0, started.stdout.decode() + started.stderr.decode()
    pid = int((generated / "run" / "supervisord.pid").read_text())
    settings = generated / "config" / "settings.py"
    settings.write_text(settings.read_text() + "\nmax_connections = 0\n")
    done = run_lamson("restart", cwd=generated, env=project_env, timeout=180)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        "lamson restart: config/settings.py: max_connections: must be at least 1, not 0 "
        "(lamson check -offline lists every finding)"]
    assert int((generated / "run" / "supervisord.pid").read_text()) == pid and pid_alive(pid)
    with socket.create_connection(("127.0.0.1", ports["receiver"]), timeout=10) as sock:
        sock.settimeout(30)
        assert sock.makefile("rb").readline().startswith(b"220 ")  # still receiving mail


def test_an_authserv_id_left_to_the_host_is_a_warning(tmp_path: Path) -> None:
    """Issue 21, finding 8: the id forged Authentication-Results are removed by is named, or lamson check says so
    (with auth_results on, as it is by default: the test suite turns it off in the environment)."""

    def check_authenticating(root: Path) -> tuple[int, list[str]]:
        env = {**base_env(root), "LAMSON_AUTH_RESULTS": "1"}
        done = run_lamson("check", "-root", str(root), "-offline", cwd=root, env=env)
        assert done.stderr == b"", done.stderr
        return done.returncode, done.stdout.decode().splitlines()

    project = make_project(tmp_path / "app", f"redis://127.0.0.1:{free_port()}/0")
    code, out = check_authenticating(project["root"])
    assert code == 0
    assert out[0].startswith("warning: authserv_id: not set, nor receiver_hostname: Authentication-Results name "
                             "this host as "), out
    assert out[1:] == ["0 error(s), 1 warning(s)"]
    for setting in ("authserv_id = 'mx.example.org'", "receiver_hostname = 'mx.example.org'"):
        named = make_project(tmp_path / setting.split()[0], f"redis://127.0.0.1:{free_port()}/0", extra=setting)
        assert check_authenticating(named["root"]) == (0, ["settings OK"]), setting
    assert check(project["root"], "-offline") == (0, ["settings OK"])  # auth_results off: no header, no warning
