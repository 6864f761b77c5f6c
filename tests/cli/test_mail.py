"""send, sendmail, blast and the log daemon, over real SMTP on 127.0.0.1 (no project needed)."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from lamson import maildir
from tests.cli.conftest import Tracker, base_env, pid_alive
from tests.support import free_port, run_lamson, wait_for


class LogServer:
    """A `lamson log` daemon started by the CLI in a scratch directory."""

    def __init__(self, cwd: Path, port: int, env: dict[str, str]) -> None:
        self.cwd, self.port, self.env = cwd, port, env

    def lamson(self, *args: str, input: bytes | None = None):  # noqa: A002 - subprocess's name
        return run_lamson(*args, cwd=self.cwd, env=self.env, input=input)

    def stored(self) -> list[bytes]:
        folder = self.cwd / "run" / "queue"
        return [(folder / "new" / key).read_bytes() for key in maildir.keys(folder, "new")]

    def wait_stored(self, count: int) -> list[bytes]:
        return wait_for(lambda: len(self.stored()) >= count and self.stored(), 20, what=f"{count} stored")


@pytest.fixture
def logserver(tmp_path: Path, tracker: Tracker) -> Iterator[LogServer]:
    port = free_port()
    server = LogServer(tmp_path, port, base_env(tmp_path))
    started = server.lamson("log", "-port", str(port))
    tracker.add_pidfiles(tmp_path / "run")
    assert started.returncode == 0, started.stderr.decode()
    assert b"logging server on 127.0.0.1:" in started.stdout
    try:
        yield server
    finally:
        tracker.add_pidfiles(tmp_path / "run")
        server.lamson("stop", "-pid", "run/log.pid", "-timeout", "10")


def test_log_daemon_refuses_a_second_start_and_stops_cleanly(logserver: LogServer) -> None:
    pid = int((logserver.cwd / "run" / "log.pid").read_text())
    assert pid_alive(pid)
    again = logserver.lamson("log", "-port", str(logserver.port))
    assert again.returncode == 1
    assert b"already running" in again.stderr and len(again.stderr.splitlines()) == 1
    stopped = logserver.lamson("stop", "-ALL", "run")
    assert stopped.returncode == 0
    assert f"Attempting to stop lamson at pid {pid}".encode() in stopped.stdout
    assert not pid_alive(pid)
    assert not (logserver.cwd / "run" / "log.pid").exists()


def test_stale_pid_file_needs_force_and_is_removed_by_stop(tmp_path: Path, tracker: Tracker) -> None:
    env = base_env(tmp_path)
    (tmp_path / "run").mkdir()
    stale = tmp_path / "run" / "log.pid"
    stale.write_text("999999999\n")  # above pid_max: never a live process
    port = free_port()
    refused = run_lamson("log", "-port", str(port), cwd=tmp_path, env=env)
    assert refused.returncode == 1 and b"stale pid file" in refused.stderr and b"-FORCE" in refused.stderr
    forced = run_lamson("log", "-port", str(port), "-FORCE", cwd=tmp_path, env=env)
    tracker.add_pidfiles(tmp_path / "run")
    assert forced.returncode == 0, forced.stderr.decode()
    (tmp_path / "run" / "other.pid").write_text("999999998\n")
    stopped = run_lamson("stop", "-ALL", "run", cwd=tmp_path, env=env)
    assert stopped.returncode == 0
    assert b"Removing stale pid file run/other.pid" in stopped.stdout
    assert list((tmp_path / "run").glob("*.pid")) == []


def test_send_builds_mime_with_a_binary_attachment(logserver: LogServer, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 40
    (tmp_path / "photo.jpg").write_bytes(blob)
    (tmp_path / "notes.txt").write_text("caf\u00e9 notes\n")
    result = logserver.lamson(
        "send", "-sender", "me@localhost", "-to", "hello@test.com", "-subject", "My test.",
        "-body", "Hi there.", "-attach", "photo.jpg", "--attach", "notes.txt", "-port", str(logserver.port))
    assert result.returncode == 0, result.stderr.decode()
    (data,) = logserver.wait_stored(1)
    msg = message_from_bytes(data, policy=policy.default)
    assert msg["Subject"] == "My test." and msg["To"] == "hello@test.com" and msg["Message-ID"]
    assert msg["Return-Path"] == "<me@localhost>"
    parts = {part.get_filename(): part for part in msg.iter_attachments()}
    assert parts["photo.jpg"].get_content_type() == "image/jpeg"
    assert parts["photo.jpg"].get_payload(decode=True) == blob
    assert parts["notes.txt"].get_content().replace("\r\n", "\n") == "caf\u00e9 notes\n"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hi there.\n"


def test_send_debug_prints_the_smtp_conversation(logserver: LogServer) -> None:
    result = logserver.lamson("send", "-port", str(logserver.port), "-debug", "1", "-sender", "me@localhost",
                              "-to", "hello@test.com", "-subject", "Hi there", "-body", "Test body.")
    assert result.returncode == 0
    chat = result.stderr.decode()
    for step in ("send: 'ehlo", "reply: b'250", "send: 'mail FROM:<me@localhost>", "send: 'rcpt TO:<hello@test.com>",
                 "send: 'data", "reply: retcode (354)", "send: 'quit"):
        assert step in chat, step


def test_sendmail_reads_stdin_like_mutt_calls_it(logserver: LogServer) -> None:
    message = b"From: Me <me@localhost>\nTo: hello@test.com\nBcc: hidden@test.com\nSubject: piped\n\n.leading dot\nbody\n"
    plain = logserver.lamson("sendmail", "-port", str(logserver.port), "-host", "127.0.0.1", "-oem", "-oi",
                             "-B8BITMIME", "--", "hello@test.com", input=message)
    assert plain.returncode == 0, plain.stderr.decode()
    (first,) = logserver.wait_stored(1)
    assert b"X-Original-To: hello@test.com\r\n" in first
    assert first.endswith(b"\r\n.leading dot\r\nbody")  # stored without the last line end, as 1.x did

    headers = logserver.lamson("sendmail", "-t", "-f", "bounces@localhost", "-port", str(logserver.port),
                               input=message)
    assert headers.returncode == 0, headers.stderr.decode()
    second = [m for m in logserver.wait_stored(2) if m != first][0]
    assert b"Return-Path: <bounces@localhost>" in second
    assert b"X-Original-To: hidden@test.com" in second and b"X-Original-To: hello@test.com" in second
    assert b"\nBcc:" not in second

    nobody = logserver.lamson("sendmail", "-port", str(logserver.port), input=message)
    assert nobody.returncode == 2 and b"no recipients" in nobody.stderr


def test_blast_replays_a_maildir_and_an_mbox(logserver: LogServer, tmp_path: Path) -> None:
    source = maildir.ensure(tmp_path / "saved")
    for n in range(5):
        maildir.write(source, f"From: a@test.com\r\nTo: b{n}@test.com\r\nSubject: {n}\r\n\r\nbody {n}\r\n".encode())
    result = logserver.lamson("blast", "-input", "saved", "-port", str(logserver.port))
    assert result.returncode == 0, result.stderr.decode()
    assert b"sent 5, failed 0" in result.stdout and b"messages/s" in result.stdout
    logserver.wait_stored(5)

    box = mailbox.mbox(tmp_path / "saved.mbox")
    box.add(b"From: a@test.com\nTo: c@test.com\nSubject: m\n\nmbox body\n")
    box.add(b"From: a@test.com\nTo: d@test.com\nSubject: n\n\nmbox body\n")
    box.close()
    result = logserver.lamson("blast", "-input", "saved.mbox", "-to", "all@test.com", "-port", str(logserver.port))
    assert b"sent 2, failed 0" in result.stdout
    stored = logserver.wait_stored(7)
    assert sum(b"X-Original-To: all@test.com" in m for m in stored) == 2

    missing = logserver.lamson("blast", "-input", "nowhere", "-port", str(logserver.port))
    assert missing.returncode == 1 and b"no Maildir or mbox" in missing.stderr
