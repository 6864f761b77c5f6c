"""lamson.handlers.forward and lamson.handlers.queue: the guide's built-in handlers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lamson import context
from lamson.context import Context
from lamson.handlers import forward
from lamson.handlers import queue as queue_handler
from lamson.mail import MailRequest
from lamson.names import Names
from lamson.queue import Queue
from lamson.router.decorators import spec_of

DATA = (b"From: Ann <ann@example.com>\r\nTo: box@app.example\r\nCc: third@party.example\r\n"
        b"Bcc: hidden@party.example\r\nSubject: hello\r\n\r\nbody\r\n")


class RecordingRelay:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, Any, Any]] = []

    def deliver(self, message: Any, To: Any = None, From: Any = None) -> str:  # noqa: N803
        self.sent.append((message, To, From))
        return "job"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[SimpleNamespace]:
    settings = SimpleNamespace(relay=RecordingRelay(), queue_dir=str(tmp_path / "queue"))
    previous = context.get()
    context.install(Context(settings=settings, conn=None, names=Names()))  # type: ignore[arg-type]
    yield settings
    context.install(previous)


@pytest.mark.parametrize("module", [forward, queue_handler])
def test_stateless_start_on_any_address(module: Any) -> None:
    spec = spec_of(module.START)
    assert spec is not None and spec.stateless and spec.nolocking
    assert spec.pattern == "(to)@(host)" and spec.captures == {"to": ".+", "host": ".+"}


def test_forward_goes_to_the_routed_recipient_only(app: SimpleNamespace) -> None:
    message = MailRequest("127.0.0.1", "ann@example.com", "box@app.example", DATA)
    forward.START(message, to="box", host="app.example")
    [(sent, to, sender)] = app.relay.sent
    assert to == "box@app.example"  # never Cc/Bcc third parties from the headers
    assert sender == "ann@example.com"
    assert sent is message and sent.as_bytes() == DATA  # unchanged bytes


def test_forward_keeps_the_null_sender(app: SimpleNamespace) -> None:
    bounce = MailRequest("127.0.0.1", "<>", "box@app.example", b"Subject: failure\r\n\r\nx")
    forward.START(bounce, to="box", host="app.example")
    assert app.relay.sent[0][1:] == ("box@app.example", "")


def test_forward_without_relay_is_a_clear_error(app: SimpleNamespace) -> None:
    del app.relay
    with pytest.raises(RuntimeError, match="settings.relay"):
        forward.START(MailRequest("p", "a@b.example", "c@d.example", DATA), to="c", host="d.example")


def test_queue_handler_pushes_the_message_as_received(app: SimpleNamespace) -> None:
    message = MailRequest("127.0.0.1", "ann@example.com", "box@app.example", DATA)
    queue_handler.START(message, to="box", host="app.example")
    stored = Queue(app.queue_dir)
    [key] = stored.keys()
    assert stored.get_bytes(key) == DATA
    assert re.match(r"^\d+\.", key)


def test_queue_handler_defaults_to_run_queue(app: SimpleNamespace, project_dir: Path) -> None:
    del app.queue_dir
    queue_handler.START(MailRequest("p", "a@b.example", "c@d.example", DATA), to="c", host="d.example")
    assert Queue(project_dir / "run" / "queue").count() == 1
