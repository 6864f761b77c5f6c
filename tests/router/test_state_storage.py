"""Conversation stores: the StateStorage base class, MemoryStorage and ShelveStorage."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamson.router import MemoryStorage, RouterClass, ShelveStorage, StateStorage
from lamson.testing import make_message
from tests.router.handlers import twostep

TWOSTEP = "tests.router.handlers.twostep"


def test_base_class_says_what_a_subclass_must_implement() -> None:
    store = StateStorage()
    with pytest.raises(NotImplementedError, match="get"):
        store.get("k", "s")
    with pytest.raises(NotImplementedError, match="set"):
        store.set("k", "s", "X")
    with pytest.raises(NotImplementedError, match="clear"):
        store.clear()
    assert list(store.conversations()) == []


class DictStore(StateStorage):
    """What an application writes to keep state elsewhere: get/set/clear only."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], str] = {}

    def get(self, key: str, sender: str) -> str:
        return self.data.get((key, sender), "START")

    def set(self, key: str, sender: str, state: str) -> None:
        self.data[(key, sender)] = state

    def clear(self) -> None:
        self.data.clear()


def test_an_application_store_subclass_drives_the_router(router: RouterClass) -> None:
    router.STATE_STORE = DictStore()
    router.defaults(host="test\\.com")
    router.load([TWOSTEP])
    router.deliver(make_message("Ann@Example.org", "x@test.com"))
    assert router.STATE_STORE.data == {(TWOSTEP, "ann@example.org"): "NEXT"}
    router.deliver(make_message("ann@example.org", "x-next@test.com"))
    assert twostep.CALLS == ["START", "NEXT"]
    router.clear_states()
    assert router.STATE_STORE.data == {}


@pytest.fixture(params=["memory", "shelve"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStorage]:
    yield MemoryStorage() if request.param == "memory" else ShelveStorage(tmp_path / "states.db")


def test_get_set_start_deletes_and_clear(store: StateStorage) -> None:
    assert store.get("app.h", "a@x.org") == "START"
    store.set("app.h", "a@x.org", "RUNNING")
    store.set("app.h", "b@x.org", "END")
    store.set('odd"key\x1f', "a@x.org", "OTHER")
    assert store.get("app.h", "a@x.org") == "RUNNING"
    assert store.get('odd"key\x1f', "a@x.org") == "OTHER"
    store.set("app.h", "a@x.org", "START")  # forgets the conversation
    assert sorted(store.conversations()) == [("app.h", "b@x.org", "END"), ('odd"key\x1f', "a@x.org", "OTHER")]
    store.clear()
    assert list(store.conversations()) == []
    assert store.get("app.h", "b@x.org") == "START"


def test_shelve_storage_persists_across_instances(tmp_path: Path) -> None:
    path = str(tmp_path / "states")
    ShelveStorage(path).set("app.h", "a@x.org", "RUNNING")
    again = ShelveStorage(path)
    assert again.get("app.h", "a@x.org") == "RUNNING"
    assert repr(again) == f"ShelveStorage({path!r})"


def _writer(path: str, worker: int, count: int) -> None:
    store = ShelveStorage(path)
    for n in range(count):
        store.set("app.h", f"w{worker}-{n}@x.org", f"S{n}")


def test_shelve_storage_is_safe_for_several_processes(tmp_path: Path) -> None:
    """Router workers are processes: concurrent writers must not lose each other's writes."""
    path = str(tmp_path / "shared")
    ShelveStorage(path).clear()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    found = {sender: state for _, sender, state in ShelveStorage(path).conversations()}
    assert len(found) == 160
    assert found["w3-39@x.org"] == "S39"


def test_router_on_shelve_storage(router: RouterClass, tmp_path: Path) -> None:
    router.STATE_STORE = ShelveStorage(tmp_path / "router")
    router.defaults(host="test\\.com")
    router.load([TWOSTEP])
    router.deliver(make_message("ann@example.org", "x@test.com"))
    assert ShelveStorage(tmp_path / "router").get(TWOSTEP, "ann@example.org") == "NEXT"
