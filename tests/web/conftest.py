"""Fixtures for ``lamson web`` tests: the real server, as a process, over a temporary project.

Shared by the API tests, the security tests and the browser tests (tests/web/test_browser.py):

- ``web_project``: a :class:`WebProject` in ``tmp_path``: ``config/settings.py`` (free receiver
  port, the session's Redis), ``run/`` with the mailboxes' folders. ``project.deliver(mailbox, bytes)``
  drops a message into one of its Maildirs (``"queue"`` is run/queue, as the logging server writes it).
- ``web``: ``lamson web`` started on a free port over ``web_project`` (cwd = the project): a
  :class:`WebServer` with ``url``, ``csrf``, ``project`` and small HTTP helpers (``get_json``,
  ``post_json``, ``request``) built on http.client. The process is ended by its pid after the test,
  even when the test fails. A test that needs the receiver to answer runs ``tests.sink.smtp_sink(
  port=web.project.receiver_port)`` itself (an aiosmtpd sink that records envelopes).
- ``start_web(root, ...)``: the same as a context manager, for other settings (a password, another
  host, extra environment).
- ``web_pipeline`` (module scope): the whole pipeline (tests/e2e's deploy tree under supervisord:
  Redis, receiver, router workers, relay, logging server) plus ``lamson web`` over it: a
  :class:`WebPipeline` (a WebServer plus ``receiver_port``, ``log_port``, ``queue``, ``undeliverable``)
  whose sends reach the demo application, whose replies arrive in the ``queue`` mailbox. Slow
  (~20-40 s to start), so one per test module.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lamson import maildir
from tests.support import BIN, free_port, make_project, stop_process, wait_for


@dataclass
class WebProject:
    """A temporary Lamson project for the web server: its root and its receiver's port."""

    root: Path
    receiver_port: int

    def mailbox(self, name: str) -> Path:
        """The folder of a mailbox by its API name (queue, sent, undeliverable, bounced, or run/NAME)."""
        named = {"queue": "run/queue", "sent": "run/web-sent", "undeliverable": "run/undeliverable",
                 "bounced": "run/bounced"}
        return self.root / named.get(name, f"run/{name}")

    def deliver(self, mailbox: str, data: bytes, key: str | None = None) -> str:
        """Store ``data`` in the mailbox's Maildir (new/), as the logging server would; return its key."""
        return maildir.write(maildir.ensure(self.mailbox(mailbox)), data, key=key, sync=False)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebServer:
    """A running ``lamson web``: where it is, its CSRF token, and HTTP helpers (http.client, no extra dependency)."""

    url: str
    project: WebProject
    proc: subprocess.Popen[Any]
    log: Path
    csrf: str = ""
    password: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 60.0) -> Reply:
        """One request; ``headers`` replace the defaults (the password's Authorization when set)."""
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
        sent = dict(self.extra_headers)
        if self.password is not None:
            import base64

            sent["Authorization"] = "Basic " + base64.b64encode(f"dev:{self.password}".encode()).decode()
        sent.update(headers or {})
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers=headers)

    def get_json(self, path: str, status: int = 200) -> Any:
        """GET ``path``, assert the status, return the JSON answer."""
        reply = self.get(path)
        assert reply.status == status, (reply.status, reply.body[:500])
        return reply.json()

    def post(self, path: str, payload: Any, headers: dict[str, str] | None = None, csrf: bool = True) -> Reply:
        """POST JSON with the CSRF token (unless ``csrf=False``) and our own Origin."""
        sent = {"Content-Type": "application/json", "Origin": self.url.rstrip("/")}
        if csrf:
            sent["X-CSRF-Token"] = self.csrf
        sent.update(headers or {})
        return self.request("POST", path, json.dumps(payload).encode(), sent)

    def post_json(self, path: str, payload: Any, status: int = 200) -> Any:
        reply = self.post(path, payload)
        assert reply.status == status, (reply.status, reply.body[:500])
        return reply.json()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def new_project(root: Path, redis_url: str, *, extra: str = "") -> WebProject:
    """A project for the web server in ``root``: settings on free ports, no application code needed."""
    made = make_project(root, redis_url, copy_demo=False, extra=extra)
    (root / "run").mkdir(exist_ok=True)
    return WebProject(root, int(made["receiver_port"]))


def web_env(**extra: str) -> dict[str, str]:
    """The environment of a web process started by a test: no stray LAMSON_* variables, no DNS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMSON_")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["LAMSON_AUTH_RESULTS"] = "0"
    env.update(extra)
    return env


@contextmanager
def start_web(project: WebProject, *, host: str = "127.0.0.1", port: int | None = None, args: tuple[str, ...] = (),
              env: dict[str, str] | None = None, password: str | None = None, timeout: float = 60.0,
              cwd: Path | None = None) -> Iterator[WebServer]:
    """``lamson web`` on a free port over ``project`` until the block ends; ended by pid even on failure.

    ``password``: what the tests' requests send (HTTP Basic); the server's own comes from the
    project's settings or run/web.token. The server's CSRF token is read from ``GET /api/session``.
    """
    port = port or free_port()
    log = project.root / f"web-{port}.log"
    out = open(log, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(BIN / "lamson"), "web", "-host", host, "-port", str(port), *args],
                            cwd=cwd or project.root, env=env or web_env(), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    shown = f"[{host}]" if ":" in host else host
    server = WebServer(f"http://{shown}:{port}", project, proc, log, password=password)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"lamson web exited with {proc.returncode}:\n{server.log_text()}")
            try:
                return server.get("/api/session").status in (200, 401)
            except OSError:
                return False

        wait_for(up, timeout, 0.1, f"lamson web on port {port}")
        session = server.get("/api/session")
        if session.status == 200:
            server.csrf = session.json()["csrf"]
        yield server
    finally:
        stop_process(proc)
        out.close()


@pytest.fixture
def web_project(tmp_path: Path, redis_url: str) -> WebProject:
    """A temporary project (settings with a free receiver port, the session's Redis) for ``lamson web``."""
    return new_project(tmp_path / "project", redis_url)


@pytest.fixture
def web(web_project: WebProject) -> Iterator[WebServer]:
    """``lamson web`` running over ``web_project`` on a free loopback port."""
    with start_web(web_project) as server:
        yield server


def _count_programs(conf: Path) -> int:
    """How many processes a supervisord.conf starts (``numprocs`` counted)."""
    import configparser

    parser = configparser.RawConfigParser(strict=False)
    parser.read(conf)
    total = 0
    for section in parser.sections():
        if section.startswith("program:"):
            total += int(parser.get(section, "numprocs", fallback="1"))
    return total


@dataclass
class WebPipeline(WebServer):
    """``lamson web`` over the running pipeline: the web server plus where the pipeline's parts are."""

    ports: dict[str, int] = field(default_factory=dict)
    supervised: Any = None

    @property
    def root(self) -> Path:
        return self.project.root

    @property
    def receiver_port(self) -> int:
        """The application's receiver (SMTP): mail sent here is routed by the demo application."""
        return self.ports["receiver"]

    @property
    def log_port(self) -> int:
        """The logging server (the relay's smart host): what it receives lands in the ``queue`` mailbox."""
        return self.ports["relay"]

    @property
    def queue(self) -> Path:
        """run/queue: the logging server's Maildir (the ``queue`` mailbox)."""
        return self.root / "run" / "queue"

    @property
    def undeliverable(self) -> Path:
        """run/undeliverable: parked mail (the ``undeliverable`` mailbox)."""
        return self.root / "run" / "undeliverable"


@pytest.fixture(scope="module")
def web_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebPipeline]:
    """The real pipeline (tests/e2e's deploy tree under supervisord) and ``lamson web`` over it, per module.

    The demo application answers mail to hello@test.com; its replies reach the logging server's
    Maildir, the ``queue`` mailbox. When the deploy files run ``web`` themselves, that program is
    used (on the free port given in LAMSON_WEB_PORT); otherwise the fixture starts one. Tests
    sharing it must use their own addresses and subjects.
    """
    from tests.e2e.conftest import deploy_tree
    from tests.support import supervised

    root, env, ports = deploy_tree(tmp_path_factory.mktemp("web-pipeline"))
    web_port = free_port()
    env["LAMSON_WEB_PORT"] = str(web_port)
    conf = root / "deploy" / "supervisord.conf"
    runs_web = "[program:web]" in conf.read_text()
    project = WebProject(root, ports["receiver"])
    with supervised(root, env, _count_programs(conf), (ports["redis"], ports["receiver"], ports["relay"])) as sup:
        if runs_web:
            done = subprocess.Popen(["true"])
            done.wait()
            server = WebPipeline(f"http://127.0.0.1:{web_port}", project, done, root / "logs" / "web.log",
                                 ports=ports, supervised=sup)
            wait_for(lambda: _answers(server), 60, 0.2, "the web program")
            server.csrf = server.get_json("/api/session")["csrf"]
            yield server
        else:
            app_env = {**env, "LAMSON_ROOT": str(root / "examples" / "demo")}
            with start_web(project, port=web_port, env=app_env, cwd=root) as plain:
                yield WebPipeline(plain.url, project, plain.proc, plain.log, csrf=plain.csrf, ports=ports,
                                  supervised=sup)


def _answers(server: WebServer) -> bool:
    try:
        return server.get("/api/session").status == 200
    except OSError:
        return False


def kill_quietly(pid: int) -> None:
    """End a process by pid (tests that start one outside :func:`start_web`)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
