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
