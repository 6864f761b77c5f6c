"""The handlers Lamson ships: ``lamson.handlers.log`` beside an application's own."""

from __future__ import annotations

import logging

import pytest

from lamson.mail import MailRequest
from lamson.router import Router
from lamson.testing import reset_router


@pytest.fixture(autouse=True)
def clean_router():
    reset_router()
    yield
    reset_router()


def test_log_handler_logs_every_message_and_leaves_state_alone(caplog: pytest.LogCaptureFixture) -> None:
    Router.load(["lamson.handlers.log"])
    message = MailRequest("127.0.0.1", "Someone@Example.org", "anything@anywhere.test",
                          b"From: someone@example.org\r\nSubject: logged\r\n\r\nbody\r\n")
    with caplog.at_level(logging.INFO, logger="lamson.handlers.log"):
        Router.deliver(message)
    assert "to=<anything@anywhere.test>" in caplog.text and "'logged'" in caplog.text
    assert Router.get_state("lamson.handlers.log", message) == "START"


def test_a_redis_failure_in_a_handler_is_not_parked_as_a_crash(tmp_path, monkeypatch) -> None:
    """If Redis fails under a handler (say relay.deliver), the job must fail and retry, not park the message."""
    import redis

    from lamson.queue import Queue

    (tmp_path / "app_redis_down.py").write_text(
        "import redis\n"
        "from lamson.router import route\n\n"
        "@route('(to)', to='.+')\n"
        "def START(message, to=None):\n"
        "    raise redis.ConnectionError('Redis went away')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    Router.UNDELIVERABLE_QUEUE = Queue(tmp_path / "undeliverable")
    Router.load(["app_redis_down"])
    message = MailRequest("127.0.0.1", "a@example.org", "b@test.com", b"Subject: x\r\n\r\nbody\r\n")
    with pytest.raises(redis.ConnectionError):
        Router.deliver(message)
    assert Router.UNDELIVERABLE_QUEUE.count() == 0
    assert Router.get_state("app_redis_down", message) == "START"
