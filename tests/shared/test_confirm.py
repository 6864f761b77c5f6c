"""lamson.confirm: the sign-up confirmation flow, on a real Redis and on a dict."""

from __future__ import annotations

import os
import re
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import redis

from lamson import context, maildir, view
from lamson.confirm import ConfirmationEngine, ConfirmationStorage
from lamson.context import Context
from lamson.mail import MailRequest
from lamson.names import Names
from lamson.queue import Queue

TEMPLATES = {"dir": "tests.shared", "module": "data/templates"}


class RecordingRelay:
    """Stands in for settings.relay: keeps what a handler delivered."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, Any]] = []

    def deliver(self, message: Any, To: Any = None, From: Any = None) -> str:  # noqa: N803
        self.sent.append((message, To))
        return "job"


@pytest.fixture(autouse=True)
def loader() -> Iterator[jinja2.Environment]:
    previous = view.LOADER
    yield view.configure(TEMPLATES)
    view.LOADER = previous


def signup(sender: str = "Joe.User@Example.COM", to: str = "dev-subscribe@lists.example.org") -> MailRequest:
    data = (f"From: Joe <{sender}>\r\nTo: {to}\r\nSubject: subscribe\r\n\r\nplease\r\n").encode()
    return MailRequest("127.0.0.1", sender, to, data)


@pytest.fixture(params=["redis", "dict"])
def storage(request: pytest.FixtureRequest, no_context: None) -> ConfirmationStorage:
    if request.param == "dict":
        return ConfirmationStorage(db={})
    conn = request.getfixturevalue("redis_conn")
    return ConfirmationStorage(conn=conn, names=Names("confirmtest"))


def test_the_guides_flow(storage: ConfirmationStorage, tmp_path: Path) -> None:
    engine = ConfirmationEngine(str(tmp_path / "pending"), storage)
    relay = RecordingRelay()
    variables: dict[str, Any] = {"host": "lists.example.org"}
    address = engine.send(relay, "dev", signup(), "confirm.txt", variables)
    assert address is not None
    found = re.fullmatch(r"dev-confirm-([a-f0-9]{32})@lists\.example\.org", address)
    assert found is not None
    secret = found.group(1)
    assert variables["confirm_address"] == f"dev-confirm-{secret}"  # 1.x: vars gains the locals

    [(reply, envelope_to)] = relay.sent
    assert envelope_to == "joe.user@example.com"
    assert reply["To"] == "joe.user@example.com"
    assert reply["From"] == reply["Reply-To"] == address
    assert reply["Subject"] == "Confirmation required"
    assert f"reply to dev-confirm-{secret}@lists.example.org" in reply.Body

    # the answer comes from the sender, in any case, with or without a display name
    assert engine.verify("dev", "joe.user@example.com", "0" * 32) is None
    original = engine.verify("dev", "Joe <JOE.USER@example.com>", secret)
    assert original is not None and original["subject"] == "subscribe"
    assert engine.verify("dev", "joe.user@example.com", secret) is None  # a secret works once
    assert engine.pending.count() == 1  # the pending mail stays until deleted


def test_secret_is_per_target_and_sender(storage: ConfirmationStorage, tmp_path: Path) -> None:
    engine = ConfirmationEngine(tmp_path / "pending", storage)
    secret = engine.register("dev", signup()).rsplit("-", 1)[1]
    assert engine.verify("other", "joe.user@example.com", secret) is None
    assert engine.verify("dev", "mallory@example.com", secret) is None
    assert engine.verify("dev", "joe.user@example.com", secret.upper()) is not None  # routes may uppercase


def test_register_again_replaces_secret_and_pending_message(storage: ConfirmationStorage, tmp_path: Path) -> None:
    engine = ConfirmationEngine(tmp_path / "pending", storage)
    first = engine.register("dev", signup()).rsplit("-", 1)[1]
    second = engine.register("dev", signup()).rsplit("-", 1)[1]
    assert first != second and engine.pending.count() == 1
    assert engine.verify("dev", "joe.user@example.com", first) is None
    assert engine.verify("dev", "joe.user@example.com", second) is not None


def test_cancel_drops_entry_and_message(storage: ConfirmationStorage, tmp_path: Path) -> None:
    engine = ConfirmationEngine(tmp_path / "pending", storage)
    secret = engine.register("dev", signup()).rsplit("-", 1)[1]
    assert engine.cancel("dev", "joe.user@example.com", "wrong") is False
    assert engine.pending.count() == 1
    assert engine.cancel("dev", "JOE.user@example.com", secret) is True
    assert engine.pending.count() == 0 and storage.get("dev", "joe.user@example.com") == (None, None)


def test_storage_interface(storage: ConfirmationStorage) -> None:
    assert storage.get("dev", "a@example.com") == (None, None)
    storage.store("dev", "A@Example.com", "s3cret", "key1")
    assert storage.get("dev", "a@example.com") == ("s3cret", "key1")
    storage.store("dev:x", "b@example.com", "t", "key2")
    assert storage.get("dev", "x:b@example.com") == (None, None)  # no ambiguity from ':'
    storage.delete("dev", "a@EXAMPLE.com")
    assert storage.get("dev", "a@example.com") == (None, None)
    storage.clear()
    assert storage.get("dev:x", "b@example.com") == (None, None)


def test_pending_helpers_and_clear(storage: ConfirmationStorage, tmp_path: Path) -> None:
    engine = ConfirmationEngine(Queue(tmp_path / "pending"), storage)
    key = engine.push_pending(signup())
    assert engine.get_pending(key)["subject"] == "subscribe"
    assert engine.get_pending("../../etc/passwd") is None
    engine.delete_pending(key)
    assert engine.get_pending(key) is None
    engine.register("dev", signup())
    engine.clear()
    assert engine.pending.count() == 0 and storage.get("dev", "joe.user@example.com") == (None, None)


def test_null_sender_gets_no_confirmation(storage: ConfirmationStorage, tmp_path: Path) -> None:
    engine = ConfirmationEngine(tmp_path / "pending", storage)
    relay = RecordingRelay()
    bounce = MailRequest("peer", "<>", "dev-subscribe@lists.example.org", b"Subject: failure\r\n\r\nx")
    assert engine.send(relay, "dev", bounce, "confirm.txt", {"host": "lists.example.org"}) is None
    assert relay.sent == [] and engine.pending.count() == 0
    with pytest.raises(KeyError, match="host"):
        engine.send(relay, "dev", signup(), "confirm.txt", {})


def test_secrets_are_random_hex(tmp_path: Path) -> None:
    engine = ConfirmationEngine(tmp_path / "pending", ConfirmationStorage(db={}))
    made = {engine.make_random_secret() for _ in range(200)}
    assert len(made) == 200 and all(re.fullmatch(r"[0-9a-f]{32}", s) for s in made)


def test_dict_storages_are_not_shared(tmp_path: Path) -> None:
    one, two = ConfirmationStorage(db={}), ConfirmationStorage(db={})
    one.store("dev", "a@example.com", "s", "k")
    assert two.get("dev", "a@example.com") == (None, None)
    assert ConfirmationStorage().db is None  # the default is Redis, not a shared dict


def test_redis_keys_are_namespaced_and_expire(redis_conn: redis.Redis, no_context: None) -> None:
    first = ConfirmationStorage(conn=redis_conn, names=Names("app1"))
    second = ConfirmationStorage(conn=redis_conn, names=Names("app2"))
    first.store("dev", "a@example.com", "s1", "k1")
    second.store("dev", "a@example.com", "s2", "k2")
    assert sorted(redis_conn.keys("*")) == [b"app1:confirm:dev", b"app1:confirm:dev:a@example.com",
                                            b"app2:confirm:dev", b"app2:confirm:dev:a@example.com"]
    assert 0 < redis_conn.ttl("app1:confirm:dev:a@example.com") <= 7 * 24 * 3600
    assert 0 < redis_conn.ttl("app1:confirm:dev") <= 7 * 24 * 3600  # the per-target index expires too
    first.clear()
    assert sorted(redis_conn.keys("*")) == [b"app2:confirm:dev", b"app2:confirm:dev:a@example.com"]
    assert second.get("dev", "a@example.com") == ("s2", "k2")


def test_storage_uses_the_installed_worker_context(redis_conn: redis.Redis, tmp_path: Path) -> None:
    previous = context.get()
    storage = ConfirmationStorage()  # built at import time of a handler module, before any context
    context.install(Context(settings=None, conn=redis_conn, names=Names("ctxapp")))
    try:
        storage.store("dev", "a@example.com", "s", "k")
        assert redis_conn.hgetall("ctxapp:confirm:dev:a@example.com") == {b"secret": b"s", b"pending_id": b"k"}
    finally:
        context.install(previous)


def test_storage_without_context_reads_the_settings(redis_url: str, redis_conn: redis.Redis, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, no_context: None) -> None:
    package = tmp_path / "confirmcfg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(textwrap.dedent(f"""
        redis_url = {redis_url!r}
        namespace = "fromsettings"
    """))
    monkeypatch.setenv("LAMSON_SETTINGS", "confirmcfg.settings")
    monkeypatch.setenv("LAMSON_ROOT", str(tmp_path))
    monkeypatch.delenv("LAMSON_NAMESPACE", raising=False)
    monkeypatch.delenv("LAMSON_REDIS_URL", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        ConfirmationStorage().store("dev", "a@example.com", "s", "k")
    finally:
        sys.modules.pop("confirmcfg.settings", None)
        sys.modules.pop("confirmcfg", None)
    assert sorted(redis_conn.keys("*")) == [b"fromsettings:confirm:dev", b"fromsettings:confirm:dev:a@example.com"]


def test_pending_messages_of_expired_confirmations_are_dropped(storage: ConfirmationStorage, tmp_path: Path) -> None:
    """A sign-up nobody answered does not stay in the pending Maildir once its secret has expired."""
    engine = ConfirmationEngine(tmp_path / "pending", storage)
    engine.register("dev", signup("old@example.com"))
    old_key = engine.pending.keys()[0]
    week_and_a_day = time.time() - storage.expires - 86400  # type: ignore[operator]
    path = maildir.locate(engine.pending.path, old_key)
    assert path is not None
    os.utime(path, (week_and_a_day, week_and_a_day))
    engine.register("dev", signup("new@example.com"))  # within the hour: no sweep yet
    assert old_key in engine.pending.keys() and len(engine.pending.keys()) == 2
    engine._expired_at -= engine.EXPIRE_EVERY
    engine.register("dev", signup("third@example.com"))
    assert old_key not in engine.pending.keys() and len(engine.pending.keys()) == 2
    assert engine.expire_pending() == 0
    assert ConfirmationEngine(tmp_path / "kept", ConfirmationStorage(db={}, expires=None)).expire_pending() == 0


def test_unsolicited_mail_is_capped_per_address_and_hour(storage: ConfirmationStorage, tmp_path: Path) -> None:
    """Finding 5 of issue 21: whatever target is written to, one address gets at most the cap an hour."""
    clock = [7200.0]
    storage.clock = lambda: clock[0]
    storage.clear()
    engine = ConfirmationEngine(tmp_path / "pending", storage, unsolicited_per_hour=3)
    relay = RecordingRelay()
    sent = [engine.send(relay, target, signup("Victim@Example.COM"), "confirm.txt", {"host": "lists.example.org"})
            for target in ("dev", "users", "announce", "dev", "other")]
    assert [s is not None for s in sent] == [True, True, True, False, False]
    assert len(relay.sent) == 3 and engine.pending.count() == 3  # refused ones keep nothing pending
    assert engine.may_send("someone.else@example.com")  # per address
    clock[0] += 3600  # the next clock hour
    assert engine.send(relay, "dev", signup("victim@example.com"), "confirm.txt", {"host": "x.example"})
    assert ConfirmationEngine(tmp_path / "p2", storage, unsolicited_per_hour=0).may_send("victim@example.com")
    storage.clear()


def test_unsolicited_counts_are_shared_through_redis(redis_conn: redis.Redis, no_context: None) -> None:
    one = ConfirmationStorage(conn=redis_conn, names=Names("capapp"))
    two = ConfirmationStorage(conn=redis_conn, names=Names("capapp"))  # another worker of the same app
    other = ConfirmationStorage(conn=redis_conn, names=Names("otherapp"))
    assert [one.allow_unsolicited("v@example.com", 2), two.allow_unsolicited("V@example.com", 2)] == [True, True]
    assert not one.allow_unsolicited("v@example.com", 2) and not two.allow_unsolicited("v@example.com", 2)
    assert other.allow_unsolicited("v@example.com", 2)  # per application namespace
    [key] = redis_conn.keys("capapp:unsolicited:*")
    assert 3600 < redis_conn.ttl(key) <= 3660


def test_the_cap_defaults_to_the_setting(tmp_path: Path, no_context: None) -> None:
    from lamson.settings import DEFAULTS

    engine = ConfirmationEngine(tmp_path / "pending", ConfirmationStorage(db={}))
    assert engine.per_hour() == DEFAULTS["unsolicited_per_hour"] == 5


def test_pending_confirmations_are_bounded_per_target(storage: ConfirmationStorage, tmp_path: Path) -> None:
    """Forged sign-ups from ever new addresses keep at most max_pending secrets and messages per target."""
    storage.clear()
    storage.max_pending = 3
    clock = [1000.0]
    storage.clock = lambda: clock[0]
    engine = ConfirmationEngine(tmp_path / "pending", storage)
    for n in range(10):
        clock[0] += 1
        engine.register("dev", signup(f"forged{n}@example.com"))
    engine.register("other", signup("forged0@example.com"))
    assert storage.pending_count("dev") == 3 and storage.pending_count("other") == 1
    assert engine.pending.count() == 4  # the dropped ones' messages are gone too
    assert storage.get("dev", "forged6@example.com") == (None, None)
    assert [storage.get("dev", f"forged{n}@example.com")[0] is not None for n in (7, 8, 9)] == [True] * 3
    secret, _ = storage.get("dev", "forged9@example.com")
    assert engine.verify("dev", "forged9@example.com", secret or "") is not None
    assert storage.pending_count("dev") == 2
    storage.clear()
