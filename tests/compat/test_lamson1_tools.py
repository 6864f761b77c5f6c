"""Lamson 1.x's tools as a 1.x application uses them: commands, ``@spam_filter``, QueueReceiver, test relay.

Written from 1.x's documented behaviour (issue 22): each command runs as a real
``lamson`` process in a project made by ``lamson gen``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lamson import maildir
from tests.cli.conftest import base_env
from tests.support import run_lamson


def lamson(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_lamson(*args, cwd=cwd, env=base_env(cwd))


@pytest.fixture
def app1(tmp_path: Path) -> Path:
    made = lamson(tmp_path, "gen", "-project", "app1")
    assert made.returncode == 0, made.stderr.decode()
    return tmp_path / "app1"


# ----------------------------------------------------------------------------- commands


def test_status_pid_of_a_server_not_started_says_so_and_succeeds(app1: Path) -> None:
    result = lamson(app1, "status", "-pid", "run/log.pid")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == "not running (no pid file run/log.pid)\n"
    (app1 / "run" / "log.pid").write_text("\n")
    empty = lamson(app1, "status", "-pid", "run/log.pid")
    assert empty.returncode == 0 and empty.stdout.decode().startswith("not running (no pid in run/log.pid")


def test_routes_of_handler_modules_given_as_arguments(app1: Path) -> None:
    result = lamson(app1, "routes", "lamson.handlers.log", "lamson.handlers.queue")
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "lamson.handlers.log.START" in out and "lamson.handlers.queue.START" in out
    assert "app.handlers.sample" not in out  # the named modules only: the boot did not run
    tested = lamson(app1, "routes", "lamson.handlers.queue", "-test", "someone@example.com")
    assert tested.returncode == 0, tested.stderr.decode()
    assert "lamson.handlers.queue.START: runs always" in tested.stdout.decode()
    assert "lamson.handlers.log.START" not in tested.stdout.decode()


def test_cleanse_of_a_queue_not_made_yet_or_empty(app1: Path) -> None:
    assert not (app1 / "run" / "queue").exists()
    missing = lamson(app1, "cleanse", "-input", "run/queue", "-output", "run/cleansed")
    assert missing.returncode == 0, missing.stderr.decode()
    assert missing.stdout.decode().startswith("cleansed 0, failed 0: run/queue does not exist")
    assert (app1 / "run" / "cleansed" / "new").is_dir()
    assert not (app1 / "run" / "queue").exists()  # reading made nothing

    maildir.ensure(app1 / "run" / "queue")
    empty = lamson(app1, "cleanse", "-input", "run/queue", "-output", "run/cleansed")
    assert empty.returncode == 0, empty.stderr.decode()
    assert empty.stdout.decode().startswith("cleansed 0, failed 0: run/queue -> ")
    assert list((app1 / "run" / "cleansed" / "new").iterdir()) == []
