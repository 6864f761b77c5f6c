"""Pid files under ``run/``: reading them, telling live from stale, stopping what they name.

A pid file outlives its process after a crash or a reboot, and the number in
it may by then belong to something else; so a pid only counts as ours when
the process is alive *and* (where /proc can tell) its command line is a
Lamson, supervisord or Redis one. Stale files are reported and removed,
never acted on.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lamson.process import alive as alive  # re-exported: the commands ask pidfiles.alive(pid)

#: Words one of which appears in the command line of every process Lamson writes a pid file for.
OUR_PROCESSES = ("lamson", "supervisord", "redis")


class PidFile:
    """One ``run/NAME.pid`` file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> int | None:
        """The pid in the file, or None if there is no file or no number in it."""
        try:
            text = self.path.read_text().strip()
        except (FileNotFoundError, IsADirectoryError):
            return None
        return int(text) if text.isdigit() and int(text) > 0 else None

    def live_pid(self) -> int | None:
        """The pid, if that process is alive and one of ours."""
        pid = self.read()
        return pid if pid is not None and alive(pid) and is_ours(pid) else None

    def exists(self) -> bool:
        return self.path.exists()

    def write(self, pid: int) -> None:
        """Write atomically, so a reader never sees an empty file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(f"{pid}\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __str__(self) -> str:
        return str(self.path)


def is_ours(pid: int) -> bool:
    """True unless /proc shows the pid now runs something that is not Lamson's."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except FileNotFoundError:
        return not Path("/proc/self").exists() and alive(pid)
    except PermissionError:
        return True
    return any(word in cmdline for word in OUR_PROCESSES)


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited; True if it did within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def stop(pid: int, timeout: float, kill: bool = False) -> bool:
    """TERM (or KILL) the process, wait for it, KILL it if TERM was not enough. True if it is gone."""
    try:
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    except ProcessLookupError:
        return True
    if wait_gone(pid, timeout):
        return True
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    return wait_gone(pid, 5.0)
