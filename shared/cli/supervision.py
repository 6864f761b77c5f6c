"""The project's supervisord: where its files are, how to start it and ask it things.

``lamson start`` is ``supervisord -c deploy/supervisord.conf`` plus a wait
until every program is up (or has failed, which is then reported); status
questions go to supervisord's XML-RPC interface on ``run/supervisor.sock``.
"""

from __future__ import annotations

import configparser
import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from lamson.cli.framework import CommandError
from lamson.cli.pidfiles import PidFile

#: Another supervisord configuration than deploy/supervisord.conf (relative to the project root),
#: e.g. deploy/multihost/worker.conf: one per host of a deployment that shares a checkout.
CONF_ENV = "LAMSON_SUPERVISORD_CONF"


@dataclass(frozen=True)
class Project:
    """The files of one project that ``start``/``stop``/``status`` use.

    With ``LAMSON_SUPERVISORD_CONF`` set, the configuration it names and the socket,
    pid file and log folder written in it (``%(here)s`` and ``%(ENV_X)s`` expanded):
    the per-host files of a multi-host deployment (docs/operations.md, "Several hosts").
    """

    root: Path

    @property
    def conf(self) -> Path:
        other = os.environ.get(CONF_ENV)
        return (self.root / other).resolve() if other else self.root / "deploy" / "supervisord.conf"

    def _written(self, section: str, name: str) -> Path | None:
        if not os.environ.get(CONF_ENV):
            return None
        return conf_path(self.conf, section, name)

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        written = self._written("supervisord", "logfile")
        return written.parent if written else self.root / "logs"

    @property
    def pidfile(self) -> PidFile:
        return PidFile(self._written("supervisord", "pidfile") or self.run_dir / "supervisord.pid")

    @property
    def socket(self) -> Path:
        return self._written("unix_http_server", "file") or self.run_dir / "supervisor.sock"


def conf_path(conf: Path, section: str, name: str) -> Path | None:
    """A path option of a supervisord configuration, expanded as supervisord does (here, ENV_*)."""
    import configparser

    parser = configparser.RawConfigParser()
    try:
        parser.read(conf)
        raw = parser.get(section, name)
    except (configparser.Error, OSError):
        return None
    values = {"here": str(conf.parent)} | {f"ENV_{k}": v for k, v in os.environ.items()}
    try:
        return Path(raw % values).resolve()
    except (KeyError, ValueError) as exc:
        raise CommandError(f"{conf}: [{section}] {name} = {raw}: cannot expand {exc} "
                           "(is LAMSON_HOSTNAME set?)") from None


def supervisord_command(conf: Path) -> list[str]:
    """supervisord from this interpreter's environment (works without an activated venv)."""
    beside = Path(sys.executable).parent / "supervisord"
    if beside.exists():
        return [str(beside), "-c", str(conf)]
    found = shutil.which("supervisord")
    if found:
        return [found, "-c", str(conf)]
    return [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)]


def launch(project: Project) -> int:
    """Start supervisord (it daemonizes) and return its pid once the pid file shows it."""
    if not project.conf.is_file():
        raise CommandError(f"no {project.conf.relative_to(project.root)} in {project.root} "
                           "(run this from a project made by lamson gen, or pass -root)")
    project.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    project.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (project.socket.parent, project.pidfile.path.parent):  # a host's own run/hosts/HOST
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # umask 077 from the start: supervisord opens its own log before it applies the config's umask.
    result = subprocess.run(supervisord_command(project.conf), cwd=project.root, capture_output=True, text=True,
                            timeout=60, umask=0o077)
    if result.returncode != 0:
        reason = " ".join((result.stderr or result.stdout).split()) or f"exit code {result.returncode}"
        raise CommandError(f"supervisord did not start: {reason}")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pid = project.pidfile.live_pid()
        if pid:
            return pid
        time.sleep(0.05)
    raise CommandError(f"supervisord did not write {project.pidfile}; see {project.log_dir / 'supervisord.log'}")


def rpc(project: Project) -> Any:
    """An XML-RPC proxy to the project's supervisord, over its unix socket."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{project.socket}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket, each socket operation bounded by ``timeout`` seconds."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.call_timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self.socket_path, self.call_timeout)


def socket_rpc(socket_path: Path, timeout: float) -> Any:
    """An XML-RPC proxy to a supervisord's unix socket whose every call gives up after ``timeout`` seconds
    (OSError): a process that answers requests (``lamson web``) must not hang on a stuck supervisord,
    where the commands above may wait."""
    return xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(str(socket_path), timeout))


def programs(project: Project) -> list[dict[str, Any]] | None:
    """supervisord's view of every process, or None when it does not answer."""
    if not project.socket.exists():
        return None
    try:
        return cast("list[dict[str, Any]]", rpc(project).supervisor.getAllProcessInfo())  # XML-RPC: untyped
    except (OSError, xmlrpc.client.Error):
        return None


def wait_settled(project: Project, timeout: float) -> list[dict[str, Any]]:
    """Wait until every autostarted program is RUNNING or has failed; return the last view."""
    deadline = time.monotonic() + timeout
    infos: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        infos = programs(project) or []
        if infos and all(info["statename"] in ("RUNNING", "FATAL", "STOPPED", "EXITED") for info in infos):
            return infos
        time.sleep(0.2)
    return infos


def autostarted(conf: Path) -> dict[str, str]:
    """``{program: command}`` of the autostarted programs of a supervisord configuration ({} if none)."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(conf)
    except (configparser.Error, OSError):
        return {}
    found = {}
    for section in parser.sections():
        if not section.startswith("program:"):
            continue
        if parser.get(section, "autostart", fallback="true").strip().lower() in ("false", "0", "no", "off"):
            continue
        found[section.split(":", 1)[1]] = parser.get(section, "command", fallback="")
    return found


def full_name(info: dict[str, Any]) -> str:
    """``group:name`` for numbered processes (router:router_00), else the program name."""
    return info["name"] if info["group"] == info["name"] else f"{info['group']}:{info['name']}"


def uptime_seconds(info: dict[str, Any]) -> int | None:
    """How many seconds a running process has been up (supervisord's now - start), None when not running."""
    if info["statename"] != "RUNNING" or not info.get("start"):
        return None
    return max(0, int(info["now"]) - int(info["start"]))


def uptime(info: dict[str, Any]) -> str:
    """How long a running process has been up, as H:MM:SS."""
    seconds = uptime_seconds(info)
    if seconds is None:
        return "-"
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
