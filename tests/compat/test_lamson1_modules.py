"""lamson.routing, lamson.server and lamson.utils: the 1.x names, and what they do here."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Write = Callable[[str, str], Path]


def test_routing_names_are_the_router_objects() -> None:
    import lamson.router as router
    import lamson.routing as routing

    for name in ("route", "route_like", "stateless", "nolocking", "state_key_generator", "Router",
                 "RouterClass", "RoutingBase", "StateStorage", "MemoryStorage", "ShelveStorage",
                 "RedisStorage", "RoutingError"):
        assert getattr(routing, name) is getattr(router, name), name
    assert routing.ROUTE_FIRST_STATE == "START"
    assert routing.DEFAULT_STATE_KEY("app.h", object()) == "app.h"
    assert set(routing.__all__) <= set(dir(routing))


def test_lamson_setting_reads_what_the_decorators_recorded() -> None:
    from lamson.routing import has_lamson_settings, lamson_setting, route, stateless

    @route("(a)@(host)", a="x+")
    @route("(a)-b@(host)")
    @stateless
    def FORWARD(message, a=None, host=None):  # noqa: N802
        return None

    assert has_lamson_settings(FORWARD) and not has_lamson_settings(len)
    assert lamson_setting(FORWARD, "format") == "(a)@(host)"
    assert lamson_setting(FORWARD, "captures") == {"a": "x+"}
    assert lamson_setting(FORWARD, "stateless") is True
    assert lamson_setting(FORWARD, "nolocking") is False
    assert lamson_setting(len, "stateless") is None
    with pytest.raises(KeyError, match="unknown route setting"):
        lamson_setting(FORWARD, "colour")


@pytest.mark.parametrize(
    ("code", "message", "text"),
    [
        (550, None, "550 Requested action not taken: mailbox unavailable"),
        (554, None, "554 Transaction failed"),
        (451, None, "451 Requested action aborted: local error in processing"),
        (599, None, "599 Permanent failure"),
        (450, "Try later", "450 Try later"),
        (550, "two\r\nlines\n250 injected", "550 two lines 250 injected"),
    ],
)
def test_smtp_error_text(code: int, message: str | None, text: str) -> None:
    from lamson.server import SMTPError

    err = SMTPError(code, message)
    assert str(err) == text and err.code == code
    assert "\n" not in str(err) and "\r" not in str(err)


@pytest.mark.parametrize("code", [0, 99, 600, "550", True, 5.5])
def test_smtp_error_refuses_what_is_not_a_reply_code(code: object) -> None:
    from lamson.server import SMTPError

    with pytest.raises(ValueError, match="reply code"):
        SMTPError(code)  # type: ignore[arg-type]


def test_server_relay_is_the_pipelines_relay() -> None:
    import lamson.relay
    import lamson.server

    assert lamson.server.Relay is lamson.relay.Relay


def test_smtp_receiver_default_port_and_repr() -> None:
    from lamson.server import SMTPReceiver

    receiver = SMTPReceiver()
    assert (receiver.host, receiver.port) == ("127.0.0.1", 8825)
    assert repr(SMTPReceiver("0.0.0.0", "25")) == "SMTPReceiver('0.0.0.0', 25)"


def test_queue_receiver_comes_from_the_workers_or_is_clearly_missing() -> None:
    import lamson.server

    try:
        from lamson.workers import QueueReceiver  # type: ignore[attr-defined]
    except ImportError:
        with pytest.raises(AttributeError, match="lamson.workers provides no QueueReceiver"):
            lamson.server.QueueReceiver  # noqa: B018
        assert not hasattr(lamson.server, "QueueReceiver")
    else:
        assert lamson.server.QueueReceiver is QueueReceiver
    with pytest.raises(AttributeError, match="no attribute 'Nonsense'"):
        lamson.server.Nonsense  # noqa: B018


def test_undeliverable_message_uses_the_routers_queue(tmp_path: Path) -> None:
    from lamson.queue import Queue
    from lamson.router import Router
    from lamson.server import undeliverable_message

    saved = Router.UNDELIVERABLE_QUEUE
    try:
        Router.UNDELIVERABLE_QUEUE = None
        assert undeliverable_message(b"Subject: x\r\n\r\nbody\r\n", "test") is None
        Router.UNDELIVERABLE_QUEUE = Queue(tmp_path / "u")
        key = undeliverable_message(b"Subject: kept\r\n\r\nbody\r\n", "test")
        assert key is not None and Router.UNDELIVERABLE_QUEUE.get(key)["subject"] == "kept"
    finally:
        Router.UNDELIVERABLE_QUEUE = saved


# -- lamson.utils ----------------------------------------------------------------


def test_import_settings_without_boot(guide_project: Write) -> None:
    from lamson.utils import import_settings

    settings = import_settings(False)
    assert settings.handlers == ["app.handlers.sample"]
    assert not hasattr(settings, "relay") and "config.boot" not in sys.modules


def test_import_settings_from_another_directory(guide_project: Write, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from lamson.utils import import_settings

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = import_settings(True, from_dir=str(tmp_path))
    assert settings.relay.port == 8825
    assert settings.__file__ is not None and Path(settings.__file__).parent.parent == tmp_path


def test_configure_database_creates_tables(guide_project: Write) -> None:
    from sqlalchemy import inspect

    from lamson.utils import configure_database, import_settings

    settings = import_settings(False)
    session_factory = configure_database(settings.database_config, also_create=True)
    assert inspect(session_factory.kw["bind"]).get_table_names() == ["subscribers"]


def test_configure_database_needs_a_url_and_metadata_to_create(tmp_path: Path) -> None:
    from lamson.utils import configure_database

    with pytest.raises(ValueError, match="needs a 'url'"):
        configure_database({})
    with pytest.raises(ValueError, match="metadata"):
        configure_database({"url": f"sqlite:///{tmp_path}/x.db"}, also_create=True)


def test_configure_database_without_sqlalchemy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from lamson.utils import DatabaseUnavailable, configure_database

    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # what an environment without it looks like
    with pytest.raises(DatabaseUnavailable, match=r"pip install 'lamson\[db\]'"):
        configure_database({"url": "sqlite:///app/data/main.db"})
    assert issubclass(DatabaseUnavailable, ImportError)


def test_make_fake_settings() -> None:
    from lamson.server import SMTPReceiver
    from lamson.utils import make_fake_settings

    fake = make_fake_settings("127.0.0.1", 8826)
    assert fake.receiver_config == {"host": "127.0.0.1", "port": 8826}
    assert isinstance(fake.receiver, SMTPReceiver) and fake.receiver.port == 8826
    assert fake.relay is None and fake.handlers == ["lamson.handlers.log", "lamson.handlers.queue"]
    assert fake.redis_url == "redis://127.0.0.1:6379/0"  # Lamson's defaults, like a loaded settings module


def test_check_for_pid(tmp_path: Path) -> None:
    from lamson.utils import check_for_pid

    pid_file = tmp_path / "smtp.pid"
    check_for_pid(pid_file, False)  # no file: fine
    pid_file.write_text(str(os.getpid()))  # a live process
    with pytest.raises(SystemExit, match="is running"):
        check_for_pid(pid_file, False)
    assert pid_file.exists()
    check_for_pid(pid_file, True)
    assert not pid_file.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file.write_text(str(dead.pid))  # a process that is gone: a stale file
    check_for_pid(pid_file, False)
    assert not pid_file.exists()
