"""Helpers shared by the test suite: free ports, real servers, bounded waiting.

Every process a test starts is ended by its pid, even when the test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``predicate`` until it returns a true value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate} (last: {last!r})")


def wait_all_running(status: Callable[[], str], count: int, logs: Path, timeout: float = 90.0) -> None:
    """Wait until supervisorctl's ``status`` shows ``count`` programs RUNNING.

    On a loaded machine (the suite runs in several processes) Python programs can take
    many seconds to pass their ``startsecs``; when they never do, the failure shows the
    last status and the end of every log, so the cause is in the report, not guessed at.
    """
    last = ""

    def running() -> bool:
        nonlocal last
        last = status()
        return last.count("RUNNING") == count

    try:
        wait_for(running, timeout, 0.3, f"{count} programs RUNNING")
    except AssertionError as exc:
        tails = []
        for log in sorted(logs.glob("*.log")) + sorted(logs.glob("*.out")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            tails.append(f"--- {log.name}\n" + "\n".join(lines))
        raise AssertionError(f"{exc}\nstatus:\n{last}\n" + "\n".join(tails)) from None


class Supervised:
    """A supervisord started from ``root/deploy/supervisord.conf``: ``ctl``, the pids, and its end."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.conf = root / "deploy" / "supervisord.conf"

    def ctl(self, *args: str, check: bool = False) -> str:
        out = subprocess.run([str(BIN / "supervisorctl"), "-c", str(self.conf), *args], env=self.env,
                             capture_output=True, text=True, timeout=120)
        if check and out.returncode not in (0, 3):
            raise AssertionError(f"supervisorctl {args}: {out.returncode} {out.stdout} {out.stderr}")
        return out.stdout

    def pids(self) -> list[int]:
        """The pids supervisord reports for its programs."""
        return [int(w) for w in self.ctl("pid", "all").split() if w.isdigit() and int(w) > 0]

    def supervisord_pid(self) -> int | None:
        pidfile = self.root / "run" / "supervisord.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None


def pipeline_env(ports: dict[str, int], **extra: str) -> dict[str, str]:
    """This environment, the virtualenv first on PATH, no stray LAMSON_*, the programs moved to ``ports``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMSON_")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    names = {"redis": "LAMSON_REDIS_URL", "receiver": "LAMSON_RECEIVER_PORT", "relay": "LAMSON_RELAY_PORT",
             "metrics": "LAMSON_METRICS_PORT", "web": "LAMSON_WEB_PORT"}
    for what, port in ports.items():
        env[names[what]] = f"redis://127.0.0.1:{port}/0" if what == "redis" else str(port)
    env["LAMSON_AUTH_RESULTS"] = "0"  # no DNS query leaves loopback
    if "web" not in ports:  # the development deploy files run `lamson web`: never on a fixed port in tests
        env["LAMSON_WEB_PORT"] = str(free_port())
    env.update(extra)
    return env


@contextmanager
def supervised(root: Path, env: dict[str, str], programs: int, wait_ports: tuple[int, ...] = ()
               ) -> Iterator[Supervised]:
    """supervisord with ``root``'s deploy file until the block ends, then shut down; every pid ends.

    It waits for ``wait_ports`` to accept connections and ``programs`` programs to be RUNNING;
    on the way out it asks supervisord to shut down (its programs finish what they hold) and
    kills by pid whatever is still there after 90 s, the programs too.
    """
    s = Supervised(root, env)
    started = subprocess.run([str(BIN / "supervisord"), "-c", str(s.conf)], cwd=root, env=env,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    children: list[int] = []
    try:
        for port in wait_ports:
            wait_port(port, timeout=60)
        wait_all_running(lambda: s.ctl("status"), programs, root / "logs")
        children = s.pids()
        yield s
    finally:
        sup = s.supervisord_pid()
        if sup and _alive(sup):
            s.ctl("shutdown")
            deadline = time.monotonic() + 90
            while _alive(sup) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(sup):
                os.kill(sup, signal.SIGKILL)
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    from lamson.process import alive

    return alive(pid)


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    """Wait until something accepts TCP connections on host:port."""

    def accepting() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_for(accepting, timeout, 0.05, f"{host}:{port} to accept connections")


def redis_server_binary() -> str:
    """The redis-server executable; the suite fails loudly without it."""
    path = shutil.which("redis-server")
    if not path:
        raise RuntimeError(
            "redis-server is not installed: the test suite needs a real Redis "
            "(apt-get install redis-server, or run the README's test command)"
        )
    return path


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """TERM, then KILL, a process (and its process group when it leads one)."""
    if proc.poll() is not None:
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    own_group = pgid == proc.pid
    try:
        if own_group:
            os.killpg(pgid, signal.SIGTERM)
        else:
            proc.terminate()
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        if own_group:
            os.killpg(pgid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(5)
    except ProcessLookupError:
        pass


@contextmanager
def redis_server(directory: Path, port: int | None = None, extra: list[str] | None = None) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    """A private redis-server on a free loopback port with AOF on, ended on exit."""
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
        "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction", "--daemonize", "no",
        "--logfile", str(directory / "redis.log"),
    ] + (extra or [])
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port, timeout=20)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        stop_process(proc)


def run_lamson(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 60, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the installed ``lamson`` command and capture its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([str(BIN / "lamson"), *args], cwd=cwd, env=full_env, capture_output=True,
                          timeout=timeout, input=input)


def spawn(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
          log: Path | None = None) -> subprocess.Popen[Any]:
    """Start a long-running process in its own session (so it can be ended with its children)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(args, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


SETTINGS_TEMPLATE = '''\
receiver_config = {{"host": "127.0.0.1", "port": {receiver_port}}}
relay_config = {{"host": "127.0.0.1", "port": {relay_port}}}
handlers = {handlers!r}
router_defaults = {{"host": r"test\\.com"}}
template_config = {{"dir": "app", "module": "templates"}}
redis_url = {redis_url!r}
spool = {spool!r}
spool_dir = {spool_dir!r}
queue_dir = "run/queue"
undeliverable_dir = "run/undeliverable"
sweep_grace = {sweep_grace}
sweep_interval = {sweep_interval}
{extra}
'''


def make_project(root: Path, redis_url: str, *, handlers: list[str] | None = None, spool: str = "maildir",
                 receiver_port: int | None = None, relay_port: int | None = None, extra: str = "",
                 sweep_grace: float = 1.0, sweep_interval: float = 1.0, copy_demo: bool = True) -> dict[str, Any]:
    """A runnable application in ``root``: the demo app's code plus settings on free ports."""
    root.mkdir(parents=True, exist_ok=True)
    if copy_demo:
        shutil.copytree(REPO / "examples" / "demo" / "app", root / "app", dirs_exist_ok=True)
        shutil.copytree(REPO / "examples" / "demo" / "config", root / "config", dirs_exist_ok=True)
    else:
        (root / "config").mkdir(exist_ok=True)
        (root / "config" / "__init__.py").touch()
    ports = {"receiver_port": receiver_port or free_port(), "relay_port": relay_port or free_port()}
    (root / "config" / "settings.py").write_text(SETTINGS_TEMPLATE.format(
        redis_url=redis_url, handlers=handlers or ["app.handlers.sample"], spool=spool,
        spool_dir=str(root / "run" / "spool"), extra=extra, sweep_grace=sweep_grace,
        sweep_interval=sweep_interval, **ports))
    return {"root": root, **ports}


@contextmanager
def router_runtime(tmp_path: Path, conn: Any, handlers: list[str], *, namespace: str, worker_id: str,
                   **settings: Any) -> Iterator[Any]:
    """A router worker's runtime in this process, built as ``lamson worker`` builds it (lamson.runtime), on a
    real Redis, routing with ``handlers`` (the process's Router, restored afterwards); its spool, outbox and
    parked mail under ``tmp_path``. ``settings`` override the defaults."""
    from types import SimpleNamespace

    from lamson import context
    from lamson.router import Router
    from lamson.runtime import build_runtime
    from lamson.settings import DEFAULTS
    from lamson.testing import router_snapshot

    values = {**DEFAULTS, "namespace": namespace, "spool_dir": str(tmp_path / "spool"),
              "outbox_dir": str(tmp_path / "outbox"), "undeliverable_dir": str(tmp_path / "undeliverable"),
              **settings}
    try:
        with router_snapshot():
            Router.clear_routes()
            Router.defaults(host=r"test\.com")
            Router.load(handlers)
            runtime = build_runtime(SimpleNamespace(**values), "router", conn=conn, router=Router)
            runtime.worker_id = worker_id
            yield runtime
    finally:
        context.install(None)
