"""Issue 21, finding 10: under ``supervisord -n`` (systemd, containers) run/ and logs/ are still private.

``supervisord -n`` does not apply the config's ``umask=077``: in a fresh clone the program logs were
0644 in a 0755 logs/. Here the real deploy (tests/e2e/conftest.py's deploy_tree) runs under
``supervisord -n`` started with umask 022 and run/ and logs/ made 0755 beforehand, as a clone has them;
every program must leave both 0700 and nothing in them open to group or others.
"""

from __future__ import annotations

import os
import signal
import smtplib
import stat
import subprocess
import time
from pathlib import Path

from tests.e2e.conftest import deploy_tree
from tests.support import BIN, Supervised, _alive, wait_all_running, wait_for, wait_port


def open_to_others(root: Path) -> list[str]:
    """Entries under ``root`` (itself included) with any group or other permission bit."""
    found = []
    for path in [root, *root.rglob("*")]:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            continue
        if stat.S_IMODE(info.st_mode) & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.S_IMODE(info.st_mode):o}")
    return found


def test_supervisord_n_leaves_run_and_logs_private(tmp_path: Path) -> None:
    root, env, ports = deploy_tree(tmp_path)
    for folder in (root / "run", root / "logs"):
        folder.chmod(0o755)  # as a fresh clone has them
    sup = Supervised(root, env)
    proc = subprocess.Popen([str(BIN / "supervisord"), "-n", "-c", str(sup.conf)], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            umask=0o022)
    children: list[int] = []
    try:
        for port in (ports["redis"], ports["receiver"], ports["relay"]):
            wait_port(port, timeout=60)
        wait_all_running(lambda: sup.ctl("status"), 8, root / "logs")
        children = sup.pids()
        logs = sorted(p.name for p in (root / "logs").iterdir())
        assert "lamson.log" in logs and "relay.log" in logs, logs

        def private() -> bool:
            return not open_to_others(root / "run") and not open_to_others(root / "logs")

        wait_for(private, 20, interval=0.5,
                 what=f"run/ and logs/ private: {open_to_others(root / 'run') + open_to_others(root / 'logs')}")
        assert stat.S_IMODE((root / "run").stat().st_mode) == 0o700
        assert stat.S_IMODE((root / "logs").stat().st_mode) == 0o700
        # what the programs write from now on is theirs alone too (the receiver's spool files)
        with smtplib.SMTP("127.0.0.1", ports["receiver"], timeout=30) as smtp:
            smtp.sendmail("sender@example.org", ["hello@test.com"], b"Subject: private\r\n\r\nHi.\r\n")
        time.sleep(1.0)
        assert private(), open_to_others(root / "run") + open_to_others(root / "logs")
    finally:
        if proc.poll() is None:
            try:
                sup.ctl("shutdown")
            except Exception:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
