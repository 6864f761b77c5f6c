"""The guide's project, unchanged: booted in-process, and end to end in a project made by `lamson gen`.

The first tests boot the guide's config/settings.py, config/boot.py and
handler in this process (fixture ``guide_project``, tests/compat/conftest.py).
The end-to-end tests at the bottom write the guide's files (tests/compat/guide/,
plain text typed from the guide and the 1.x documentation) into a generated
project, with no edits, and run them: the project's pytest, then `lamson start`
(two messages over SMTP walk the conversation from START to NEW_USER, the
guide-style TestConversation test, the "Deferred Processing To Queues" boot
under `lamson start -boot config.queue`), then plain supervisord.
Everything listens on loopback on free ports; every process started is
ended by its pid, even when a test fails.
"""

from __future__ import annotations

import importlib
import logging
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lamson.mail import MailRequest
from lamson.router import Router

Write = Callable[[str, str], Path]


def incoming(to: str, sender: str = "reader@example.org", subject: str = "hi", body: str = "Hi there.") -> MailRequest:
    """A message as 1.x tests built them: envelope plus a plain string."""
    data = f"From: {sender}\nTo: {to}\nSubject: {subject}\n\n{body}\n"
    return MailRequest("fakepeer", sender, to, data)


def capture_relay(settings: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Keep what handlers give ``settings.relay.deliver`` (the pipeline's relay is not under test here)."""
    sent: list[Any] = []
    monkeypatch.setattr(settings.relay, "deliver", lambda message, To=None, From=None: sent.append(message))
    return sent


def test_guide_boot_runs_unchanged(guide_project: Write) -> None:
    from lamson import view
    from lamson.relay import Relay
    from lamson.server import SMTPReceiver
    from lamson.utils import import_settings

    settings = import_settings(True)
    assert settings is sys.modules["config.settings"]
    assert isinstance(settings.relay, Relay)
    assert (settings.relay.host, settings.relay.port, settings.relay.debug) == ("localhost", 8825, 1)
    assert isinstance(settings.receiver, SMTPReceiver)
    assert (settings.receiver.host, settings.receiver.port) == ("localhost", 8823)
    assert Router.modules == ["app.handlers.sample"] and Router.RELOAD is True
    assert Router.ORDER == ["^(?P<address>.+)@(?P<host>test\\.com)$"]
    assert view.LOADER.get_template("welcome.txt").render(address="a", host="b") == "Hello a, welcome to b."
    # Lamson's own settings are there too, for the pipeline's processes.
    assert settings.redis_url.startswith("redis://")


def test_guide_database_is_a_working_sqlite_session(guide_project: Write) -> None:
    from sqlalchemy import insert, select

    from lamson.utils import import_settings

    settings = import_settings(True)
    table = importlib.import_module("app.model.table")  # the project's own module, imported by its settings
    session = settings.database()
    table.metadata.create_all(session.get_bind())  # the guide boots with also_create=False
    session.execute(insert(table.subscribers).values(address="reader@example.org"))
    session.commit()
    assert session.execute(select(table.subscribers.c.address)).scalars().all() == ["reader@example.org"]
    session.close()
    assert Path("app/data/main.db").is_file()


def test_smtp_receiver_in_boot_binds_nothing(guide_project: Write, caplog: pytest.LogCaptureFixture) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    guide_project("config/settings.py", Path("config/settings.py").read_text().replace("8823", str(port)))
    from lamson.utils import import_settings

    settings = import_settings(True)
    assert settings.receiver.port == port
    with caplog.at_level(logging.INFO, logger="lamson.server"):
        settings.receiver.start()
        with socket.socket() as again:  # the port is still free: nothing listens in this process
            again.bind(("127.0.0.1", port))
        settings.receiver.close()
    assert "the receiver program" in caplog.text and "nothing to close" in caplog.text


def test_guide_handler_conversation_through_the_router(guide_project: Write,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from lamson.utils import import_settings

    settings = import_settings(True, boot_module="config.testing")
    assert settings.receiver is None and Router.LOG_EXCEPTIONS is False
    sent = capture_relay(settings, monkeypatch)
    sample = sys.modules["app.handlers.sample"]

    Router.deliver(incoming("hello@test.com"))
    (reply,) = sent
    assert reply["To"] == "reader@example.org" and reply["From"] == "noreply@test.com"
    assert reply["Subject"] == "Welcome to test.com"
    assert "Hello hello, welcome to test.com." in reply.Body
    assert Router.in_state(sample.NEW_USER, incoming("hello@test.com"))
    Router.deliver(incoming("hello@test.com"))
    assert len(sent) == 1 and Router.get_state("app.handlers.sample", incoming("x@test.com")) == "NEW_USER"
    Router.set_state("app.handlers.sample", incoming("x@test.com"), "END")
    Router.deliver(incoming("hello@test.com"))  # END runs NEW_USER now and returns its answer
    assert Router.get_state("app.handlers.sample", incoming("x@test.com")) == "NEW_USER"


def test_lamson_routes_reads_the_guide_project(guide_project: Write) -> None:
    import io

    from lamson.router.report import routes
    from lamson.utils import import_settings

    import_settings(True)
    out = io.StringIO()
    assert routes(out, test="hello@test.com") == 0
    text = out.getvalue()
    assert "app.handlers.sample.START  app.handlers.sample.NEW_USER  app.handlers.sample.END" in text
    assert "app.handlers.sample.FORWARD (stateless)" in text


# --- End to end: the guide's files in a generated project ---------------------------------

GUIDE = Path(__file__).resolve().parent / "guide"

#: tests/compat/guide/FILE (.py.txt: text, not code of this repository) -> where a user following the guide puts it.
FILES = {
    "settings.py.txt": "config/settings.py",
    "boot.py.txt": "config/boot.py",
    "queue.py.txt": "config/queue.py",
    "logging.conf": "config/logging.conf",
    "table.py.txt": "app/model/table.py",
    "sample.py.txt": "app/handlers/sample.py",
    "deferred.py.txt": "app/handlers/deferred.py",
    "welcome.txt": "app/templates/welcome.txt",
    "again.txt": "app/templates/again.txt",
    "deferred.txt": "app/templates/deferred.txt",
    "sample_tests.py.txt": "tests/handlers/sample_tests.py",
}


@pytest.fixture
def guide_app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], dict[str, int]]]:
    """`lamson gen -project guideapp`, the guide's files copied in; yields (root, env, ports).

    The ports come from the LAMSON_* variables the README lists (the guide's
    settings say 8823/8825 and keep saying it). Whatever the test started is
    stopped afterwards: `lamson stop -ALL run`, then every pid seen, by pid.
    """
    from tests.cli.conftest import Tracker, base_env
    from tests.support import free_port, run_lamson

    ports = {"redis": free_port(), "receiver": free_port(), "relay": free_port()}
    env = base_env(tmp_path, LAMSON_REDIS_URL=f"redis://127.0.0.1:{ports['redis']}/0",
                   LAMSON_RECEIVER_PORT=str(ports["receiver"]), LAMSON_RELAY_PORT=str(ports["relay"]))
    made = run_lamson("gen", "-project", "guideapp", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr.decode()
    root = tmp_path / "guideapp"
    for name, dest in FILES.items():
        (root / dest).write_bytes((GUIDE / name).read_bytes())
    # The generated sample's test tests the generated sample, which the guide's handler replaced.
    (root / "tests/handlers/test_sample.py").unlink()
    tracker = Tracker()
    try:
        yield root, env, ports
    finally:
        tracker.add_pidfiles(root / "run")
        tracker.add_programs(root)
        run_lamson("stop", "-ALL", "run", "-timeout", "20", cwd=root, env=env, timeout=90)
        tracker.end_all()


def send(port: int, sender: str, to: str, subject: str, body: str) -> None:
    """One message over SMTP to the receiver, as any mail client would send it."""
    import smtplib

    text = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail(sender, [to], text)


def queued(root: Path, folder: str = "run/queue") -> list[Any]:
    """The messages in a Maildir of the project (run/queue: what the logging server stored)."""
    from email import message_from_bytes
    from email.policy import default

    from lamson import maildir

    where = root / folder
    if not (where / "new").is_dir():
        return []
    out = []
    for key in maildir.keys(where, "new"):
        try:
            out.append(message_from_bytes((where / "new" / key).read_bytes(), policy=default))
        except FileNotFoundError:
            continue
    return out


def wait_subject(root: Path, to: str, subject: str, timeout: float = 30) -> Any:
    """The reply to ``to`` with ``subject`` in run/queue, once the pipeline delivered it."""
    from tests.support import wait_for

    def found() -> Any:
        return next((m for m in queued(root) if m["To"] == to and m["Subject"] == subject), None)

    return wait_for(found, timeout, 0.1, f"a reply {subject!r} to {to} in run/queue")


def conversation(root: Path, port: int, sender: str) -> None:
    """Two messages from one sender: START welcomes and moves on, NEW_USER answers the second."""
    from tests.support import wait_port

    # supervisord says RUNNING after startsecs (1 s); on a busy machine the receiver listens later.
    wait_port(port, timeout=60)
    send(port, sender, "hello@test.com", "first", "Hi there.")
    welcome = wait_subject(root, sender, "Welcome to test.com")
    assert welcome["From"] == "noreply@test.com"
    assert "Hello hello, welcome to test.com." in welcome.get_content()
    send(port, sender, "hello@test.com", "second", "Me again.")
    again = wait_subject(root, sender, "Hello again from test.com")
    assert "we remember you" in again.get_content()
    # FORWARD is stateless: it relayed both messages themselves too (to the routed recipient only).
    forwarded = [m for m in queued(root) if m["From"] == sender]
    assert sorted(m["Subject"] for m in forwarded) == ["first", "second"]
    assert all(m["To"] == "hello@test.com" for m in forwarded)
    welcomes = [m for m in queued(root) if m["To"] == sender and m["Subject"] == "Welcome to test.com"]
    assert len(welcomes) == 1  # the second message ran NEW_USER only: one stateful function per message


def deferred(root: Path, port: int, lamson: Callable[..., Any], start_queue: Callable[[], None]) -> None:
    """The guide's Deferred Processing To Queues: a handler pushes, a QueueReceiver boot routes it later."""
    from tests.support import wait_for

    sender = "later@localhost"
    # The project's unit tests pushed to run/deferred too: empty it with the guide's queue command.
    if (root / "run/deferred").is_dir():
        cleared = lamson("queue", "-name", "run/deferred", "-clear")
        assert cleared.returncode == 0, cleared.stderr.decode()
    send(port, sender, "work-deferred@test.com", "slow job", "Do this later.")
    wait_subject(root, sender, "Welcome to test.com")  # the main handlers ran (and pushed)
    held = wait_for(lambda: queued(root, "run/deferred"), 20, 0.1, "the pushed message in run/deferred")
    assert held[0]["Subject"] == "slow job"
    count = lamson("queue", "-name", "run/deferred", "-count")
    assert count.returncode == 0 and count.stdout.split() == [b"1"]
    assert not any(m["Subject"] == "Processed later by test.com" for m in queued(root))  # nobody serves it yet

    start_queue()
    done = wait_subject(root, sender, "Processed later by test.com")
    assert "Your message to work was processed from the queue." in done.get_content()
    wait_for(lambda: not queued(root, "run/deferred"), 20, 0.1, "run/deferred drained")


def test_guide_project_runs_under_lamson_start(guide_app: tuple[Path, dict[str, str], dict[str, int]]) -> None:
    import subprocess
    import time

    from tests.support import run_lamson

    root, env, ports = guide_app
    began = time.monotonic()

    def lamson(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[bytes]:
        return run_lamson(*args, cwd=root, env=env, timeout=timeout)

    # (a) The project's own tests, the guide's among them, pass as generated + the guide's files.
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root, env=env,
                           capture_output=True, timeout=120)
    out = tests.stdout.decode() + tests.stderr.decode()
    assert tests.returncode == 0, out
    assert "sample_tests.py" in subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"], cwd=root, env=env,
        capture_output=True, timeout=60).stdout.decode()

    # (b) lamson start: receiver, router workers (the guide's boot), relay, logging server.
    started = lamson("start")
    assert started.returncode == 0, started.stdout.decode() + started.stderr.decode()
    conversation(root, ports["receiver"], "reader@localhost")

    # The guide-style server test: TestConversation over SMTP, replies read from run/queue.
    (root / "tests/smtp_tests.py").write_bytes((GUIDE / "smtp_tests.py.txt").read_bytes())
    live = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/smtp_tests.py"],
                          cwd=root, env=env, capture_output=True, timeout=120)
    assert live.returncode == 0, live.stdout.decode() + live.stderr.decode()

    # Deferred Processing To Queues, started as the guide does: lamson start -boot config.queue.
    def start_queue() -> None:
        result = lamson("start", "-boot", "config.queue")
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
        assert b"queue" in result.stdout and b"RUNNING" in result.stdout

    deferred(root, ports["receiver"], lamson, start_queue)

    # The guide's boot logged through config/logging.conf into logs/lamson.log.
    assert "app.handlers.sample" in (root / "logs/lamson.log").read_text(errors="replace") or \
        "Deferring message" in (root / "logs/lamson.log").read_text(errors="replace")

    stopped = lamson("stop", "-ALL", "run", timeout=200)
    assert stopped.returncode == 0, stopped.stderr.decode()
    assert list((root / "run").glob("*.pid")) == []
    assert lamson("status").returncode == 3
    print(f"lamson start leg: {time.monotonic() - began:.1f}s")


def test_guide_project_runs_under_plain_supervisord(guide_app: tuple[Path, dict[str, str], dict[str, int]]) -> None:
    import subprocess

    from tests.support import BIN, run_lamson, wait_all_running, wait_for

    root, env, ports = guide_app

    def lamson(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[bytes]:
        return run_lamson(*args, cwd=root, env=env, timeout=timeout)

    ctl = [str(BIN / "supervisorctl"), "-c", "deploy/supervisord.conf"]
    direct = subprocess.run([str(BIN / "supervisord"), "-c", "deploy/supervisord.conf"], cwd=root, env=env,
                            capture_output=True, timeout=60)
    assert direct.returncode == 0, direct.stderr.decode()
    wait_for(lambda: (root / "run/supervisord.pid").exists(), 20, 0.1, "run/supervisord.pid")

    def status() -> str:
        return subprocess.run([*ctl, "status"], cwd=root, env=env, capture_output=True, text=True, timeout=30).stdout

    # redis, receiver, 2 routers, relay, metrics, log (queue: off)
    wait_all_running(status, 8, root / "logs")
    conversation(root, ports["receiver"], "reader@localhost")

    def start_queue() -> None:
        result = subprocess.run([*ctl, "start", "queue"], cwd=root, env=env, capture_output=True, timeout=60)
        assert result.returncode == 0 and b"started" in result.stdout, result.stdout.decode()

    deferred(root, ports["receiver"], lamson, start_queue)

    shut = subprocess.run([*ctl, "shutdown"], cwd=root, env=env, capture_output=True, timeout=120)
    assert shut.returncode == 0, shut.stdout.decode() + shut.stderr.decode()
    wait_for(lambda: not (root / "run/supervisord.pid").exists(), 60, 0.2, "supervisord gone")
