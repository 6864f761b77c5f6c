"""The ``lamson web`` command as supervisord runs it: settings and environment, a taken port, signals."""

from __future__ import annotations

import http.client
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

from tests.support import BIN, free_port, stop_process, wait_for
from tests.web.conftest import WebProject, WebServer, start_web, web_env


def spawn_web(project: WebProject, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    log = project.root / f"web-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "lamson"), "web", *args], cwd=project.root, env=env or web_env(),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/api/session")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def test_port_and_host_from_the_environment(web_project: WebProject) -> None:
    port = free_port()
    proc, log = spawn_web(web_project, env=web_env(LAMSON_WEB_PORT=str(port), LAMSON_WEB_HOST="127.0.0.1"))
    try:
        wait_for(lambda: proc.poll() is not None or answers(port), 60, 0.1, "lamson web on LAMSON_WEB_PORT")
        assert proc.poll() is None, log.read_text()
        assert f"http://127.0.0.1:{port}/" in log.read_text()
        # The index it keeps holds every message's text: the owner's only.
        wait_for(lambda: (web_project.root / "run" / "web-index.sqlite").exists(), 20, 0.1, "the index")
        assert stat.S_IMODE((web_project.root / "run" / "web-index.sqlite").stat().st_mode) == 0o600
        assert stat.S_IMODE((web_project.root / "run").stat().st_mode) == 0o700
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert "Finished server process" in log.read_text()
    finally:
        stop_process(proc)


def test_a_taken_port_is_refused_or_waited_out(web_project: WebProject) -> None:
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        done = subprocess.run([str(BIN / "lamson"), "web", "-port", str(port)], cwd=web_project.root, env=web_env(),
                              capture_output=True, timeout=60)
        assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}".encode() in done.stderr

        proc, log = spawn_web(web_project, "-port", str(port), "-wait-for-port")
        try:
            wait_for(lambda: "trying again" in log.read_text(), 60, 0.1, "the wait to be logged")
            assert proc.poll() is None
        finally:
            holder.close()
        try:
            wait_for(lambda: answers(port), 60, 0.2, "lamson web once the port is free")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(20) == 0
        finally:
            stop_process(proc)
    finally:
        holder.close()


def test_term_ends_it_promptly_with_an_event_stream_open(web: WebServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    try:
        conn.request("GET", "/api/events")
        response = conn.getresponse()
        assert response.status == 200 and response.readline().startswith(b"retry:")
        started = time.monotonic()
        web.proc.send_signal(signal.SIGTERM)
        assert web.proc.wait(20) == 0
        assert time.monotonic() - started < 15
    finally:
        conn.close()


def test_two_projects_two_servers(tmp_path: Path, redis_url: str) -> None:
    from tests.web.conftest import new_project

    one = new_project(tmp_path / "one", redis_url)
    two = new_project(tmp_path / "two", redis_url)
    one.deliver("queue", b"From: a@one.example\r\nSubject: only in one\r\n\r\nx\r\n")
    with start_web(one) as first, start_web(two) as second:
        assert first.get_json("/api/messages")["total"] == 1
        assert second.get_json("/api/messages")["total"] == 0
        assert first.csrf != second.csrf
        assert first.get_json("/api/session")["app"] == "one"


def test_root_names_the_project_from_elsewhere(tmp_path: Path, web_project: WebProject) -> None:
    web_project.deliver("queue", b"From: a@b.example\r\nSubject: from the project\r\n\r\nx\r\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with start_web(web_project, args=("-root", str(web_project.root)), cwd=elsewhere) as server:
        assert [m["subject"] for m in server.get_json("/api/messages")["messages"]] == ["from the project"]
    assert (web_project.root / "run" / "web-index.sqlite").exists()
    assert not (elsewhere / "run").exists()
