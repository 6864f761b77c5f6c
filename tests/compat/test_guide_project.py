"""The guide's config/settings.py, config/boot.py and handler, unchanged, booted and routed in-process."""

from __future__ import annotations

import importlib
import logging
import socket
import sys
from collections.abc import Callable
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
