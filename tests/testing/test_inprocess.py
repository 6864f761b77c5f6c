"""RouterConversation runs the real routing job: what production does around the handlers happens in tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from lamson import loops
from lamson.parked import Parked, read
from lamson.queue import Queue
from lamson.router import RouterClass
from lamson.server import SMTPError
from lamson.settings import DEFAULTS
from lamson.testing import RouterConversation, conversation, make_message, router_snapshot
from lamson.testing.router import reset_router
from tests.router.handlers import observer

OBSERVER = "tests.router.handlers.observer"


@pytest.fixture
def app(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RouterClass]:
    # The defaults, whatever settings module an earlier test in this process left importable (the suite's
    # LAMSON_AUTH_RESULTS=0 would then turn sender authentication off).
    monkeypatch.setattr(conversation, "_settings", lambda: SimpleNamespace(**DEFAULTS))
    with router_snapshot():
        router = reset_router()
        router.defaults(host="test\\.com")
        router.load([OBSERVER])
        observer.SEEN.clear()
        yield router


def records(root: Path) -> list[Parked]:
    """The records the job parked in the default undeliverable_dir."""
    folder = Queue(root / "run" / "undeliverable")
    return [read(folder.get_bytes(key) or b"") for key in folder.keys()]


def parked(root: Path) -> list[tuple[str, bytes]]:
    """(reason, message) of each record the job parked."""
    return [(record.reason, record.message) for record in records(root)]


def test_handlers_see_the_envelope_and_the_sender_authentication(app: RouterClass) -> None:
    client = RouterConversation("alice@example.org", "hello")
    assert client.deliver("observe@test.com", Body="hi") == 1
    (seen,) = observer.SEEN
    assert seen["envelope"].mail_from == "alice@example.org" and seen["envelope"].rcpt_tos == ("observe@test.com",)
    assert seen["auth"] is not None and seen["auth"].spf == "none"  # a loopback peer: SPF not checked


def test_a_looping_message_is_parked_before_any_handler_runs(app: RouterClass, project_dir: Path) -> None:
    client = RouterConversation("alice@example.org", "hello")
    trace = loops.trace_name(client.runtime.settings, client.runtime.names)
    looped = make_message("alice@example.org", "observe@test.com", "again", "hi",
                          X_Lamson_Loop=trace)
    looped.Data = f"{loops.TRACE_HEADER}: {trace}\r\n".encode() + looped.Data  # twice: over max_loop_traces=1
    assert client.deliver(looped) == 0
    assert observer.SEEN == []
    ((reason, message),) = parked(project_dir)
    assert reason.startswith("mail loop:") and b"Subject: again" in message


def test_a_message_no_handler_should_parse_is_quarantined(app: RouterClass, project_dir: Path) -> None:
    client = RouterConversation("alice@example.org", "hello")
    bomb = make_message("alice@example.org", "observe@test.com", "bomb", "x")
    bomb.Data = bomb.Data.replace(b"Subject:", b"X-Words: " + b"=?utf-8?q?a?= " * 5000 + b"\r\nSubject:", 1)
    assert client.deliver(bomb) == 0 and observer.SEEN == []
    ((reason, _),) = parked(project_dir)
    assert reason.startswith("quarantined:")


def test_a_crash_is_parked_with_its_envelope_when_exceptions_are_logged(app: RouterClass, project_dir: Path) -> None:
    app.UNDELIVERABLE_QUEUE = Queue(project_dir / "run" / "undeliverable")  # as a worker's wiring sets it
    client = RouterConversation("alice@example.org", "boom")
    assert client.deliver("observe@test.com", Body="x") == 1
    ((reason, message),) = parked(project_dir)
    assert "RuntimeError: handler bug" in reason and b"Subject: boom" in message
    (record,) = records(project_dir)
    assert record.envelope is not None and record.envelope.rcpt_tos == ("observe@test.com",)


def test_without_logged_exceptions_the_test_sees_the_error_as_in_lamson1(app: RouterClass) -> None:
    app.LOG_EXCEPTIONS = False  # config/testing.py's setting: errors reach the test
    client = RouterConversation("alice@example.org", "boom")
    with pytest.raises(RuntimeError, match="handler bug"):
        client.deliver("observe@test.com", Body="x")
    with pytest.raises(SMTPError):  # the failed message is gone: this one is not stuck behind it
        client.deliver("observe@test.com", Subject="refuse", Body="x")
    assert client.deliver("observe@test.com", Subject="fine", Body="x") == 1
    assert [s["subject"] for s in observer.SEEN] == ["fine"] and client.runtime.spool().waiting() == []


def test_drain_routes_what_waits(app: RouterClass) -> None:
    from lamson.testing import inprocess

    client = RouterConversation("alice@example.org", "later")
    inprocess.accept(client.runtime, make_message("alice@example.org", "observe@test.com", "queued", "x"))
    assert client.drain() == "1 routed" and observer.SEEN[0]["subject"] == "queued"
    assert client.drain() == "nothing waiting"


def test_a_test_message_has_no_verified_sender_unless_it_authenticated(app: RouterClass) -> None:
    RouterConversation("Alice <alice@example.org>", "hello").deliver("observe@test.com", Body="hi")
    RouterConversation("Alice <alice@example.org>", "hello", authenticated=True).deliver("observe@test.com", Body="x")
    first, second = (seen["message"] for seen in observer.SEEN)
    assert first.sender is None and "not verified" in first.identity.reason
    assert second.sender == "alice@example.org" and second.identity.method == "auth"
