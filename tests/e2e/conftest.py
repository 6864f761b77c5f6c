"""The real deploy/supervisord.conf, run in a copy of the repository layout on free ports."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamson.connection import with_credentials
from lamson.process import alive
from tests.support import BIN, REPO, free_port, wait_all_running, wait_port


class Pipeline:
    """A running supervisord with every Lamson program, and how to reach them."""

    def __init__(self, root: Path, env: dict[str, str], ports: dict[str, int]) -> None:
        self.root = root
        self.env = env
        self.ports = ports
        self.conf = root / "deploy" / "supervisord.conf"

    def ctl(self, *args: str, check: bool = True) -> str:
        out = subprocess.run([str(BIN / "supervisorctl"), "-c", str(self.conf), *args], env=self.env,
                             capture_output=True, text=True, timeout=120)
        if check and out.returncode not in (0, 3):
            raise AssertionError(f"supervisorctl {args}: {out.returncode} {out.stdout} {out.stderr}")
        return out.stdout

    def pids(self) -> list[int]:
        pids = []
        for line in self.ctl("pid", "all", check=False).split():
            if line.isdigit() and int(line) > 0:
                pids.append(int(line))
        return pids

    def supervisord_pid(self) -> int | None:
        pidfile = self.root / "run" / "supervisord.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None

    @property
    def redis_url(self) -> str:
        """The embedded Redis's URL with the password it generated into run/redis.pass (its default)."""
        return with_credentials(f"redis://127.0.0.1:{self.ports['redis']}/0", self.root / "run")


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    root = tmp_path / "lamson"
    shutil.copytree(REPO / "deploy", root / "deploy")
    shutil.copytree(REPO / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__", "run", "logs"))
    (root / "run").mkdir()
    (root / "logs").mkdir()
    ports = {"redis": free_port(), "receiver": free_port(), "relay": free_port(), "metrics": free_port()}
    env = dict(os.environ)
    env.update({
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        "LAMSON_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "LAMSON_RECEIVER_PORT": str(ports["receiver"]),
        "LAMSON_RELAY_PORT": str(ports["relay"]),
        "LAMSON_METRICS_PORT": str(ports["metrics"]),
    })
    env.pop("LAMSON_ROOT", None)
    env.pop("LAMSON_SETTINGS", None)
    started = subprocess.run([str(BIN / "supervisord"), "-c", str(root / "deploy" / "supervisord.conf")],
                             cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    p = Pipeline(root, env, ports)
    children: list[int] = []
    try:
        wait_port(ports["redis"], timeout=30)
        wait_port(ports["receiver"], timeout=30)
        wait_port(ports["relay"], timeout=30)
        wait_all_running(lambda: p.ctl("status"), 7, root / "logs")
        children = p.pids()
        yield p
    finally:
        sup = p.supervisord_pid()
        if sup and alive(sup):
            p.ctl("shutdown", check=False)
            deadline = time.monotonic() + 90
            while alive(sup) and time.monotonic() < deadline:
                time.sleep(0.2)
            if alive(sup):
                os.kill(sup, 9)
        for pid in children:
            if alive(pid):
                os.kill(pid, 9)
