"""Talking to the handlers in-process, as a test: the guide's RouterConversation."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from types import ModuleType
from typing import Any

from lamson.router import Router
from lamson.testing.relay import clear_queue, delivered


def make_message(From: str, To: str, Subject: str = "", Body: str = "", **headers: str) -> Any:
    """A MailRequest as the router would get it from the receiver."""
    from lamson.mail import MailRequest

    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = From
    msg["To"] = To
    msg["Subject"] = Subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(Body)
    return MailRequest("127.0.0.1", From, To, msg.as_bytes())


class RouterConversation:
    """One sender talking to the application: ``say`` routes a message and checks the answer."""

    def __init__(self, From: str, Subject: str) -> None:
        self.From = From
        self.Subject = Subject

    def begin(self) -> None:
        """Start from scratch: every conversation in START, nothing sent yet."""
        Router.clear_states()
        clear_queue()

    def deliver(self, message: Any) -> int:
        """Route a prepared message through the Router (in this process)."""
        return Router.deliver(message)

    def say(self, To: str, Body: str, expect: str | None = None, **headers: str) -> Any:
        """Send ``Body`` to ``To``; with ``expect``, assert a reply went to a matching address.

        Returns the matching reply (or None without ``expect``).
        """
        Router.deliver(make_message(self.From, To, self.Subject, Body, **headers))
        if expect is None:
            return None
        reply = delivered(expect)
        assert reply, f"expected a message to an address matching {expect!r} after saying {Body!r} to {To}"
        return reply


def assert_in_state(module: str | ModuleType, To: str, From: str, state: str) -> None:
    """Assert that ``From``'s conversation with handler ``module`` (about ``To``) is in ``state``."""
    name = module if isinstance(module, str) else module.__name__
    message = make_message(From, To)
    actual = Router.get_state(name, message)
    assert actual == state, f"{From} is in state {actual!r} in {name}, expected {state!r}"
