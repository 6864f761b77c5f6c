"""Conversations with the application, as tests: the guide's RouterConversation and TestConversation.

``RouterConversation`` routes each message in this process (no servers) through
the same routing job a worker runs (lamson.testing.inprocess: admission checks,
``message.envelope`` and ``message.auth``, parking); ``TestConversation`` sends it over SMTP with a relay to a
running server (``lamson start``) and finds the replies in the test queue
that the logging server fills. Both check replies with
:func:`lamson.testing.delivered`'s patterns.
"""

from __future__ import annotations

from email.utils import parseaddr
from types import ModuleType
from typing import Any

from lamson.router import Router
from lamson.testing.relay import clear_queue, queue, sending_directly, wait_delivered


def make_message(From: str, To: str, Subject: str = "", Body: str = "", **headers: str) -> Any:  # noqa: N803
    """A MailRequest as the router would get it from the receiver (``Auto_Submitted=`` → ``Auto-Submitted``).

    Built as a ``MailResponse``, as Lamson 1.x built it: the body arrives exactly as given (no line end
    added), so a handler that stores or forwards it keeps it as the test wrote it.
    """
    from lamson.mail import MailRequest, MailResponse

    msg = MailResponse(To=To, From=From, Subject=Subject, Body=Body)
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    return MailRequest("127.0.0.1", From, To, msg.as_bytes())


class RouterConversation:
    """One sender talking to the application in this process: ``say`` routes a message and checks the answer.

    ``timeout`` is how long ``say(..., expect=...)`` waits for the reply:
    replies captured in-process (CapturingRelay) are there at once. When the
    test boot sets a real ``lamson.server.Relay`` (1.x's ``config/testing.py``,
    with ``lamson log`` listening where it points), the handlers' replies
    are sent over SMTP before the message's routing ends
    (:func:`lamson.testing.relay.send_now`), so they are in ``run/queue``
    when ``say`` returns, as in 1.x.
    """

    timeout: float = 5.0

    def __init__(self, From: str, Subject: str, *, authenticated: bool = False) -> None:  # noqa: N803
        """``authenticated``: the sender authenticated on the submission listener as their From address, so
        handlers find a verified ``message.sender``; without, a test message (from a loopback peer, unsigned)
        has none, as a forged one would not."""
        self.From = From
        self.Subject = Subject
        self.authenticated = authenticated
        self._runtime: Any = None

    @property
    def runtime(self) -> Any:
        """The in-process router runtime this conversation's messages are routed with (built on first use)."""
        if self._runtime is None:
            from lamson.testing.inprocess import InProcessRuntime

            self._runtime = InProcessRuntime(_settings(), Router)
        return self._runtime

    def route(self, message: Any) -> int:
        """Route a prepared MailRequest as a router worker would: spooled, admitted, delivered, committed.

        Returns how many state functions ran (0: parked, or no route took it). What a handler raises
        reaches the caller when the Router does not log exceptions
        (``Router.LOG_EXCEPTIONS = False``, as ``config/testing.py`` sets it).
        """
        from lamson.testing import inprocess

        user = parseaddr(self.From)[1].lower() if self.authenticated else ""
        with sending_directly():  # a real Relay (1.x's config/testing.py) sends before this returns
            return inprocess.route(self.runtime, [inprocess.accept(self.runtime, message, auth_user=user)]).ran

    def drain(self) -> str:
        """Route whatever this conversation's messages left waiting (put back after an error, a busy lock);
        the routing job's summary ("1 routed")."""
        from lamson.testing import inprocess

        with sending_directly():
            return inprocess.route(self.runtime, []).summary

    def begin(self) -> None:
        """Start from scratch: every conversation in START, the test queue empty (as Lamson 1.x), and no
        unsolicited mail counted yet against ``unsolicited_per_hour`` (lamson.confirm)."""
        from lamson.confirm import forget_unsolicited

        Router.clear_states()
        clear_queue()
        forget_unsolicited()

    def deliver(self, To: Any, From: str | None = None, Subject: str | None = None,  # noqa: N803
                Body: str | None = None, **headers: str) -> Any:
        """Route a message: ``deliver(To, From, Subject, Body)`` (1.x), or a prepared MailRequest."""
        if not isinstance(To, str) and From is None and Subject is None and Body is None and not headers:
            return self.route(To)
        message = make_message(self.From if From is None else From, To,
                               self.Subject if Subject is None else Subject, Body or "", **headers)
        return self.route(message)

    def say(self, To: str, Body: str, expect: str | None = None, Subject: str | None = None,  # noqa: N803
            **headers: str) -> Any:
        """Send ``Body`` to ``To``; with ``expect``, assert that a reply matching it was delivered.

        ``expect`` is a :func:`delivered` pattern searched in the messages
        that arrived after this message was sent (so an earlier reply cannot
        stand in for the answer to this one). Returns that reply, or None
        without ``expect``.
        """
        before = frozenset(queue().keys())
        self.deliver(To, self.From, self.Subject if Subject is None else Subject, Body, **headers)
        if expect is None:
            return None
        reply = wait_delivered(expect, exclude=before, timeout=self.timeout)
        assert reply, (f"expected a message matching {expect!r} after {self.From} said {Body!r} to {To}; "
                       f"the test queue holds {queue().count()} message(s)")
        return reply


class TestConversation(RouterConversation):
    """One sender talking to a running server over SMTP (Lamson 1.x): ``TestConversation(relay(port=8823), ...)``.

    Messages go out through ``relay_to_use``; replies are looked for in the
    test queue (``run/queue``, where ``lamson log`` stores them), waiting up to
    ``timeout`` seconds since they cross the whole pipeline. ``begin()``
    empties the test queue and this process's Router state; the running
    server's conversation state is its own.
    """

    __test__ = False  # a library class, not a pytest test class
    timeout: float = 30.0

    def __init__(self, relay_to_use: Any, From: str, Subject: str) -> None:  # noqa: N803
        super().__init__(From, Subject)
        self.relay = relay_to_use

    def deliver(self, To: Any, From: str | None = None, Subject: str | None = None,  # noqa: N803
                Body: str | None = None, **headers: str) -> Any:
        """Send a message built from the arguments (or a prepared one) through the relay."""
        from lamson.mail import MailResponse

        if not isinstance(To, str) and From is None and Subject is None and Body is None and not headers:
            return self.relay.deliver(To)
        message = MailResponse(To=To, From=self.From if From is None else From,
                               Subject=self.Subject if Subject is None else Subject, Body=Body or "")
        for name, value in headers.items():
            message[name.replace("_", "-")] = value
        return self.relay.deliver(message)


def assert_in_state(module: str | ModuleType, To: str, From: str, state: str) -> None:  # noqa: N803
    """Assert that ``From``'s conversation with handler ``module`` (about ``To``) is in ``state``."""
    name = module if isinstance(module, str) else module.__name__
    message = make_message(From, To)
    actual = Router.get_state(name, message)
    assert actual == state, f"{From} is in state {actual!r} in {name}, expected {state!r}"


def _settings() -> Any:
    """The application's settings, as config/testing.py loaded them; the defaults outside a project."""
    from types import SimpleNamespace

    from lamson.context import app_settings
    from lamson.settings import DEFAULTS, SettingsError

    try:
        return app_settings()
    except SettingsError:  # a test of handlers alone, with no config/settings.py
        return SimpleNamespace(**DEFAULTS)
