"""``lamson check``: settings, Redis, smart host and folders checked without starting anything."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import base_env
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
