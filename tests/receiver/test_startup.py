"""The receiver's start-up (issue 19, "ready when it says so"): it greets soon after spawn, and what
accepting mail does not need (files kept ready, Redis's persistence check) comes after it listens."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from tests.support import BIN, free_port, make_project, spawn, stop_process, wait_for

#: Spawn to greeting: about 0.3-0.7 s on an idle 2-core machine, 0.7-1.7 s while supervisord starts the
#: six other programs of the demo with them; the bound leaves room for a machine loaded by other suites.
GREETING_WITHIN = 20.0


def greeted_after(port: int, started: float, timeout: float) -> tuple[float, float, bytes]:
    """Seconds from ``started`` to an accepted connection and to the first reply line, and that line."""
    deadline = started + timeout
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=1.0)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing accepted connections on {port} within {timeout}s") from None
            time.sleep(0.01)
    accepted = time.monotonic() - started
    with sock:
        sock.settimeout(max(1.0, deadline - time.monotonic()))
        line = sock.makefile("rb").readline()
    return accepted, time.monotonic() - started, line


def log_with(log: Path, needle: str) -> str:
    """The log's text once it holds ``needle``."""
    def text() -> str | None:
        found = log.read_text() if log.exists() else ""
        return found if needle in found else None
    return str(wait_for(text, 30, 0.1, f"{needle!r} in {log.name}"))


def test_the_receiver_greets_within_seconds_of_spawn(tmp_path: Path, redis_url: str) -> None:
    project = make_project(tmp_path / "app", redis_url)
    root = project["root"]
    log = root / "receiver.log"
    started = time.monotonic()
    proc = spawn([str(BIN / "lamson"), "receiver", "-root", str(root)], cwd=root, log=log)
    try:
        accepted, greeted, line = greeted_after(project["receiver_port"], started, GREETING_WITHIN)
        assert line.startswith(b"220 "), line
        assert greeted < GREETING_WITHIN
        print(f"receiver: spawn to accepted connection {accepted:.2f}s, to greeting {greeted:.2f}s")
        # The 500 files kept ready are made after it listens, not before.
        free = root / "run" / "spool" / "free"
        wait_for(lambda: free.is_dir() and len(os.listdir(free)) == 500, 30, 0.1, "500 files kept ready")
        text = log_with(log, "empty files kept ready")
        assert text.index("receiver listening on") < text.index("500 empty files kept ready"), text
    finally:
        stop_process(proc)


def test_redis_not_there_at_start_does_not_delay_the_greeting(tmp_path: Path) -> None:
    """The Maildir spool accepts without Redis; its persistence check is said after the port serves."""
    project = make_project(tmp_path / "app", f"redis://127.0.0.1:{free_port()}/0")
    root = project["root"]
    log = root / "receiver.log"
    started = time.monotonic()
    proc = spawn([str(BIN / "lamson"), "receiver", "-root", str(root)], cwd=root, log=log)
    try:
        _, greeted, line = greeted_after(project["receiver_port"], started, GREETING_WITHIN)
        assert line.startswith(b"220 "), line
        text = log_with(log, "cannot reach Redis")
        assert text.index("receiver listening on") < text.index("cannot reach Redis"), text
    finally:
        stop_process(proc)
