"""Logs a person can read, through the real processes (issue 19, item 7).

A receiver, a router worker and a relay run as real ``lamson`` processes on
the private Redis, with an aiosmtpd sink as smart host, each writing its own
log file. One message is answered, one makes its handler raise; the logs are
read as an operator would: ``grep ID`` over them finds the message's whole
journey (receiver, router, relay), the crash is a traceback block and not a
"routed" line, and with ``log_format = "json"`` every line is one JSON object.
"""

from __future__ import annotations

import json
import re
import smtplib
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Pipeline
from tests.reliability.test_lifecycle_pipeline import App
from tests.sink import Sink, smtp_sink
from tests.support import make_project, wait_for, wait_port

#: The application: answers every message, except to crash@, where the handler raises with a
#: message that tries to forge a log line; it logs a line of its own for each message too.
HANDLER = '''\
import logging

from config import settings
from lamson.mail import MailResponse
from lamson.router import route, stateless

log = logging.getLogger("app.journey")


@route("(address)@(host)", address="[a-z0-9.-]+")
@stateless
def START(message, address=None, host=None):
    log.info("the journey handler has a message for %s", address)
    if address == "crash":
        raise RuntimeError("the handler broke\\n2026-01-01 00:00:00,000 1 lamson.router INFO FORGED routed")
    settings.relay.deliver(MailResponse(To=message.From, From=f"{address}@{host}",
                                        Subject="Re: " + str(message["subject"]), Body="ok"))
'''

PROGRAMS = ("receiver", "worker", "relay")


def start(tmp_path: Path, redis_url: str, sink: Sink, extra: str = "") -> App:
    root = tmp_path / "app"
    project = make_project(root, redis_url, handlers=["app.handlers.journey"], relay_port=sink.port,
                           extra=f"namespace = 'journey'\n{extra}")
    (root / "app" / "handlers" / "journey.py").write_text(HANDLER)
    app = App(root, project, redis_url)
    for program in PROGRAMS:
        app.start(program)
    wait_port(project["receiver_port"], timeout=60)
    return app


def send(app: App | int, rcpt: str, subject: str) -> str:
    """Send one message (to an App's receiver, or a port); return the id the receiver gave it (``250 ... queued as ID``)."""
    data = f"From: someone@client.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()
    port = app if isinstance(app, int) else app.project["receiver_port"]
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo()
        assert smtp.mail("someone@client.test")[0] == 250
        assert smtp.rcpt(rcpt)[0] == 250
        code, reply = smtp.data(data)
    assert code == 250, reply
    found = re.search(rb"queued as ([0-9A-F]+)", reply)
    assert found, reply
    return found.group(1).decode()


def log(app: App, program: str) -> str:
    path = app.root / f"{program}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def lines_with(app: App, ident: str) -> dict[str, list[str]]:
    """What ``grep ident`` finds in each program's log."""
    return {program: [line for line in log(app, program).splitlines() if ident in line] for program in PROGRAMS}


def test_grep_of_a_message_id_tells_its_journey_and_a_crash_is_a_traceback_block(
        tmp_path: Path, redis_url: str, apps: list[App]) -> None:
    with smtp_sink() as sink:
        app = start(tmp_path, redis_url, sink)
        apps.append(app)
        answered = send(app, "hello@test.com", "journey")
        crashed = send(app, "crash@test.com", "crash")
        wait_for(lambda: sink.messages, 60, 0.1, "the reply at the smart host")
        wait_for(lambda: any("delivered" in line for line in lines_with(app, answered)["relay"]), 30, 0.1,
                 "the relay's line about the reply")
        wait_for(lambda: any("parked" in line for line in lines_with(app, crashed)["worker"]), 60, 0.1,
                 "the crashed message parked")

    journey = lines_with(app, answered)
    assert any(f"accepted {answered} " in line for line in journey["receiver"]), journey
    routed = [line for line in journey["worker"] if "routed to 1 recipient(s); 1 reply queued (" in line]
    assert len(routed) == 1, journey
    reply_key = routed[0].rsplit("(", 1)[1].rstrip(")")
    # The handler's own line names the message too, though the handler never wrote the id.
    assert any("the journey handler has a message for hello" in line for line in journey["worker"]), journey
    delivered = [line for line in journey["relay"] if f"delivered {reply_key} " in line]
    assert len(delivered) == 1, journey

    # The crash: an ERROR line naming the message, the traceback as an indented block under it,
    # the forged line inside the exception message indented too, and no "routed" line.
    worker = log(app, "worker").splitlines()
    (error,) = [n for n, line in enumerate(worker) if crashed in line and " ERROR " in line]
    assert "app.handlers.journey.START failed on message" in worker[error]
    block = []
    for line in worker[error + 1:]:
        if not line.startswith("    "):
            break
        block.append(line)
    assert block[0] == "    Traceback (most recent call last):", worker[error:error + 12]
    assert "    RuntimeError: the handler broke" in block
    assert "    2026-01-01 00:00:00,000 1 lamson.router INFO FORGED routed" in block
    assert not any(line.startswith("2026-01-01") for line in worker)
    crash_lines = lines_with(app, crashed)["worker"]
    assert not any("routed to" in line for line in crash_lines), crash_lines
    assert any(f"{crashed}: not routed: parked in undeliverable_dir (<crash@test.com>: "
               "app.handlers.journey.START raised RuntimeError" in line for line in crash_lines), crash_lines


def records(app: App, program: str) -> list[dict[str, Any]]:
    """Every line of a program's log as JSON (a line that is not fails the test)."""
    found = []
    for line in log(app, program).splitlines():
        if line.strip():
            try:
                found.append(json.loads(line))
            except ValueError as exc:
                raise AssertionError(f"{program}.log has a line that is not JSON: {line!r}") from exc
    return found


def test_json_logs_are_one_object_per_line_with_the_id_and_the_traceback_as_fields(
        tmp_path: Path, redis_url: str, apps: list[App]) -> None:
    with smtp_sink() as sink:
        app = start(tmp_path, redis_url, sink, extra='log_format = "json"\n')
        apps.append(app)
        answered = send(app, "hello@test.com", "journey")
        crashed = send(app, "crash@test.com", "crash")
        wait_for(lambda: sink.messages, 60, 0.1, "the reply at the smart host")
        wait_for(lambda: any(r.get("id") == answered and "delivered" in r["message"]
                             for r in records(app, "relay")), 30, 0.1, "the relay's record about the reply")
        wait_for(lambda: any(r.get("id") == crashed and "not routed" in r["message"]
                             for r in records(app, "worker")), 60, 0.1, "the crashed message parked")

    for program in PROGRAMS:
        for record in records(app, program):
            assert {"time", "level", "logger", "process", "message"} <= set(record), record
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"]), record
    assert any(r.get("id") == answered for r in records(app, "receiver"))
    assert any(r.get("id") == answered and "routed to 1 recipient(s)" in r["message"] for r in records(app, "worker"))
    assert any(r.get("id") == answered and r["logger"] == "app.journey" for r in records(app, "worker"))
    (failed,) = [r for r in records(app, "worker") if r.get("id") == crashed and r["level"] == "ERROR"]
    assert failed["logger"] == "lamson.router"
    assert failed["traceback"].startswith("Traceback (most recent call last):\n")
    assert "RuntimeError: the handler broke\n2026-01-01" in failed["traceback"]
    assert not any("routed to" in r["message"] for r in records(app, "worker") if r.get("id") == crashed)


def test_grep_id_over_the_deploy_logs_finds_receiver_router_and_relay(pipeline: Pipeline) -> None:
    """The real deploy/supervisord.conf with the demo: ``grep ID logs/*`` as the docs say."""
    ident = send(pipeline.ports["receiver"], "hello@test.com", "where did it go?")
    logs_dir = pipeline.root / "logs"

    def grep() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for path in sorted(logs_dir.glob("*.log")):
            hits = [line for line in path.read_text(errors="replace").splitlines() if ident in line]
            if hits:
                found[path.name] = hits
        return found

    wait_for(lambda: any("delivered" in line for line in grep().get("relay.log", [])), 120, 0.2,
             "the relay's line about the reply")
    found = grep()
    assert any(f"accepted {ident} " in line for line in found["lamson.log"]), found
    routers = [line for name, lines in found.items() if name.startswith("router_") for line in lines]
    assert any(f"{ident}: routed to 1 recipient(s); 1 reply queued (" in line for line in routers), found
    assert any(f"{ident}: delivered " in line for line in found["relay.log"]), found
