"""Fixtures for the command line tests: isolated environments, generated projects, cleanup by pid."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamson.process import alive
from tests.support import BIN, free_port, run_lamson

#: Variables that would point a command at another project or Redis.
CLEARED = ("LAMSON_SETTINGS", "LAMSON_ROOT", "LAMSON_BOOT", "LAMSON_REDIS_URL", "LAMSON_RECEIVER_PORT",
           "LAMSON_RELAY_PORT", "LAMSON_RECEIVER_HOST", "LAMSON_RELAY_HOST", "LAMSON_SPOOL", "LAMSON_SPOOL_DIR")


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment a user would have: the venv's bin first on PATH, no stray LAMSON_* settings."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("PYTEST")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env["HOME"] = str(home)
    # Generated projects run `lamson web` under supervisord: never on its fixed default port in tests.
    env["LAMSON_WEB_PORT"] = str(free_port())
    env.update(extra)
    return env


pid_alive = alive  # tests import it under this name
def ours(pid: int) -> bool:
    """Only Lamson's own processes are ever signalled (a pid may have been reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    return any(word in cmdline for word in (b"lamson", b"supervisord", b"redis-server"))


def kill_pid(pid: int, timeout: float = 20.0) -> None:
    """TERM, then KILL, one process started (through the CLI) by a test."""
    if not pid_alive(pid) or not ours(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Tracker:
    """Remembers every pid a test's commands started, so teardown can end them all."""

    def __init__(self) -> None:
        self.pids: set[int] = set()

    def add_pidfiles(self, folder: Path) -> None:
        for path in folder.glob("*.pid"):
            text = path.read_text().strip()
            if text.isdigit():
                self.pids.add(int(text))

    def add_programs(self, root: Path) -> None:
        """The pids supervisord reports for its programs (ended even if supervisord is killed)."""
        from lamson.cli import supervision

        for info in supervision.programs(supervision.Project(root)) or []:
            if info.get("pid"):
                self.pids.add(int(info["pid"]))

    def end_all(self) -> None:
        # supervisord and the log daemon first (supervisord stops its programs), then the rest.
        for pid in sorted(self.pids):
            kill_pid(pid)


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    found = Tracker()
    yield found
    found.end_all()


@pytest.fixture
def ports() -> dict[str, int]:
    return {"redis": free_port(), "receiver": free_port(), "relay": free_port()}


@pytest.fixture
def project_env(tmp_path: Path, ports: dict[str, int]) -> dict[str, str]:
    """Environment with the generated project's ports and Redis moved to free ports."""
    return base_env(
        tmp_path,
        LAMSON_REDIS_URL=f"redis://127.0.0.1:{ports['redis']}/0",
        LAMSON_RECEIVER_PORT=str(ports["receiver"]),
        LAMSON_RELAY_PORT=str(ports["relay"]),
    )


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A scratch directory with a short path, removed afterwards.

    supervisord's control socket (``run/supervisor.sock``, reached as
    ``deploy/../run/``) must fit in 107 bytes; pytest's tmp_path under xdist
    with a long test name does not leave room for it.
    """
    found = Path(tempfile.mkdtemp(prefix="lamson-", dir="/tmp"))
    try:
        yield found
    finally:
        shutil.rmtree(found, ignore_errors=True)


@pytest.fixture
def generated(short_dir: Path, project_env: dict[str, str], tracker: Tracker) -> Iterator[Path]:
    """A project made by `lamson gen`; whatever it starts is stopped by pid afterwards."""
    result = run_lamson("gen", "-project", "mymailserver", cwd=short_dir, env=project_env)
    assert result.returncode == 0, result.stderr.decode()
    root = short_dir / "mymailserver"
    try:
        yield root
    finally:
        tracker.add_programs(root)
        tracker.add_pidfiles(root / "run")
        run_lamson("stop", "-ALL", "run", "-timeout", "20", cwd=root, env=project_env, timeout=90)
        tracker.end_all()
