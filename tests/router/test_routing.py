"""The guide's state machine, in-process: MemoryStorage, local locks, real MailRequest."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from lamson import parked
from lamson.mail import MailRequest
from lamson.queue import Queue
from lamson.router import ConversationBusy, LocalLocks, RouterClass, RoutingError
from lamson.testing import make_message
from tests.router.handlers import keyed, noerror, other, sample, target

SAMPLE = "tests.router.handlers.sample"


def msg(to: str, subject: str = "hi", sender: str = "joe@example.org") -> MailRequest:
    return make_message(sender, to, subject, "body")


def states() -> list[str]:
    return [name for name, _ in sample.CALLS]


@pytest.fixture
def loaded(router: RouterClass) -> RouterClass:
    router.defaults(host="test\\.com")
    router.load([SAMPLE])
    return router


def test_pattern_compiled_with_defaults_anchored_and_in_order(loaded: RouterClass) -> None:
    assert loaded.ORDER == [
        "^(?P<address>.+)@(?P<host>test\\.com)$",
        "^(?P<list_name>[a-z]+)-(?P<action>subscribe|unsubscribe)@(?P<host>test\\.com)$",
    ]
    table = loaded.TABLE
    assert [f.__name__ for f in table[loaded.ORDER[0]]] == ["START", "NEW_USER", "RUNNING", "END", "ERROR"]
    assert [f.__name__ for f in table[loaded.ORDER[1]]] == ["FORWARD"]
    assert list(loaded.match("nobody@other.com")) == []
    (funcs, captures), = list(loaded.match("Alice@TEST.com"))
    assert captures == {"address": "alice", "host": "test.com"}


def test_unknown_capture_is_an_error_at_load(router: RouterClass) -> None:
    with pytest.raises(RoutingError, match=r"\(host\)"):
        router.load([SAMPLE])


def test_full_conversation_start_to_start_with_captures(loaded: RouterClass) -> None:
    for expected in ["NEW_USER", "RUNNING", "END", "START", "NEW_USER"]:
        loaded.deliver(msg("alice@test.com"))
        assert loaded.get_state(SAMPLE, msg("x@test.com")) == expected
    assert states() == ["START", "NEW_USER", "RUNNING", "END", "START"]
    assert sample.CALLS[0][1] == {"address": "alice", "host": "test.com"}


def test_returning_none_keeps_state(loaded: RouterClass) -> None:
    loaded.set_state(SAMPLE, msg("a@test.com"), "RUNNING")
    loaded.deliver(msg("a@test.com", subject="stay"))
    assert loaded.get_state(SAMPLE, msg("a@test.com")) == "RUNNING"


def test_calling_the_next_state_runs_it_now(loaded: RouterClass) -> None:
    loaded.set_state(SAMPLE, msg("a@test.com"), sample.NEW_USER)
    loaded.deliver(msg("a@test.com", subject="now"))
    assert states() == ["NEW_USER", "RUNNING"]
    assert loaded.get_state(SAMPLE, msg("a@test.com")) == "END"


def test_state_is_per_sender_bare_and_case_insensitive(loaded: RouterClass) -> None:
    loaded.deliver(msg("a@test.com", sender="Joe@Example.ORG"))
    m = MailRequest("peer", "Joe Bloggs <JOE@example.org>", "a@test.com", b"Subject: x\r\n\r\nbody")
    assert loaded.get_state(SAMPLE, m) == "NEW_USER"
    assert loaded.get_state(SAMPLE, msg("a@test.com", sender="ann@example.org")) == "START"
    loaded.deliver(m)
    assert states() == ["START", "NEW_USER"]


def test_stateless_runs_whatever_the_state_and_never_changes_it(loaded: RouterClass) -> None:
    loaded.set_state(SAMPLE, msg("x@test.com"), "RUNNING")
    loaded.deliver(msg("news-subscribe@test.com"))
    # The list route (stateless FORWARD) and the (address)@(host) route (RUNNING) both match.
    assert states() == ["RUNNING", "FORWARD"]
    assert sample.CALLS[1][1] == {"list_name": "news", "action": "subscribe", "host": "test.com"}
    assert loaded.get_state(SAMPLE, msg("x@test.com")) == "END"


def test_error_state_is_entered_then_called_on_next_message(loaded: RouterClass, tmp_path) -> None:
    loaded.UNDELIVERABLE_QUEUE = Queue(tmp_path / "undeliverable")
    loaded.set_state(SAMPLE, msg("a@test.com"), "RUNNING")
    loaded.deliver(msg("a@test.com", subject="boom"))
    assert loaded.get_state(SAMPLE, msg("a@test.com")) == "ERROR"
    (key, kept), = list(loaded.UNDELIVERABLE_QUEUE)
    assert "RuntimeError: handler bug" in kept["X-Lamson-Reason"]
    assert kept["subject"] == "boom"
    record = parked.read(loaded.UNDELIVERABLE_QUEUE.get_bytes(key))  # the one parked record (lamson.parked)
    assert record.envelope is not None and record.envelope.mail_from == "joe@example.org"
    loaded.deliver(msg("a@test.com"))
    assert states()[-1] == "ERROR"
    assert loaded.get_state(SAMPLE, msg("a@test.com")) == "START"


def test_error_without_error_state_keeps_state_and_logs_traceback(router: RouterClass, caplog) -> None:
    router.defaults(host="test\\.com")
    router.load(["tests.router.handlers.noerror"])
    router.deliver(msg("fail@test.com"))
    with caplog.at_level(logging.ERROR, logger="lamson.router"):
        router.deliver(msg("fail@test.com"))
        router.deliver(msg("fail@test.com"))
    assert noerror.CALLS == ["START", "SECOND", "SECOND"]
    assert router.get_state("tests.router.handlers.noerror", msg("fail@test.com")) == "SECOND"
    assert "ValueError: always fails" in caplog.text and "Traceback" in caplog.text


def test_log_exceptions_false_propagates(loaded: RouterClass) -> None:
    loaded.LOG_EXCEPTIONS = False
    loaded.set_state(SAMPLE, msg("a@test.com"), "RUNNING")
    with pytest.raises(RuntimeError, match="handler bug"):
        loaded.deliver(msg("a@test.com", subject="boom"))
    assert loaded.get_state(SAMPLE, msg("a@test.com")) == "ERROR"


def test_undeliverable_goes_to_queue_or_log(loaded: RouterClass, tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="lamson.router"):
        assert loaded.deliver(msg("someone@elsewhere.net")) == 0
    assert "didn't match any handlers" in caplog.text
    loaded.UNDELIVERABLE_QUEUE = Queue(tmp_path / "u")
    loaded.deliver(msg("someone@elsewhere.net", subject="lost"))
    (key, kept), = list(loaded.UNDELIVERABLE_QUEUE)
    assert kept["subject"] == "lost"
    record = parked.read(loaded.UNDELIVERABLE_QUEUE.get_bytes(key))
    assert record.envelope is not None and record.envelope.rcpt_tos == ("someone@elsewhere.net",)
    assert record.reason == "no route matched in the current state"


def test_several_recipients_routed_once_each(loaded: RouterClass) -> None:
    m = msg("a@test.com")
    m.To = ["a@test.com", "B@test.com", "c@nowhere.org"]
    assert loaded.deliver(m) == 2
    assert [c[1]["address"] for c in sample.CALLS] == ["a", "b"]


def test_state_of_another_module(router: RouterClass) -> None:
    router.defaults(host="test\\.com")
    router.load(["tests.router.handlers.other", "tests.router.handlers.target"])
    router.deliver(msg("handoff@test.com"))
    # One stateful function per message: other.START, first in route order; target.START
    # (also in state, on the same route) waits. other.START set target's state.
    assert other.CALLS == ["other.START"] and target.CALLS == []
    assert router.get_state("tests.router.handlers.target", msg("handoff@test.com")) == "WAITING"
    assert router.get_state("tests.router.handlers.other", msg("handoff@test.com")) == "START"
    router.deliver(msg("target@test.com"))
    assert target.CALLS == ["target.WAITING"]
    assert router.get_state("tests.router.handlers.target", msg("handoff@test.com")) == "START"


def test_state_key_generator_and_nolocking(router: RouterClass) -> None:
    router.defaults(host="test\\.com")
    router.load(["tests.router.handlers.keyed"])
    name = "tests.router.handlers.keyed"
    router.deliver(msg("python@lists.test.com"))
    router.deliver(msg("python@lists.test.com"))
    router.deliver(msg("rust@lists.test.com"))
    assert keyed.CALLS == ["START", "MEMBER", "START"]
    store = router.STATE_STORE
    assert sorted(store.conversations()) == [
        (name + ":python@lists.test.com", "joe@example.org", "MEMBER"),
        (name + ":rust@lists.test.com", "joe@example.org", "MEMBER"),
    ]


def test_stale_state_name_counts_as_start(loaded: RouterClass) -> None:
    loaded.set_state(SAMPLE, msg("a@test.com"), "RENAMED_LONG_AGO")
    loaded.deliver(msg("a@test.com"))
    assert states() == ["START"]


def test_raw_regex_route_and_route_like_need_a_route(router: RouterClass) -> None:
    from lamson.router import route, route_like

    with pytest.raises(TypeError):
        route_like(lambda m: None)
    fn = route("^postmaster@(?:[a-z.]+)$")(lambda m: None)
    assert fn.__name__ == "<lambda>"


def test_busy_conversation_raises_before_anything_runs(loaded: RouterClass) -> None:
    loaded.LOCKS = LocalLocks(wait=0.2)
    lock_name = loaded.lock_name(sample.START, msg("a@test.com"))
    release = threading.Event()
    holding = threading.Event()

    def hold() -> None:
        with loaded.LOCKS.hold([lock_name]):
            holding.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        holding.wait(5)
        with pytest.raises(ConversationBusy):
            loaded.deliver(msg("news-subscribe@test.com"))
        assert sample.CALLS == []
    finally:
        release.set()
        t.join()
    loaded.deliver(msg("a@test.com"))
    assert states() == ["START"]


def test_reload_picks_up_changed_file_only_when_it_changes(router: RouterClass, tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "reloadapp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    handler = pkg / "h.py"
    template = (
        "from lamson.router import route\n"
        "SEEN = []\n"
        "@route('(address)@x\\\\.org', address='.+')\n"
        "def START(message, address=None):\n"
        "    SEEN.append({word!r})\n"
    )
    handler.write_text(template.format(word="one"))
    monkeypatch.syspath_prepend(str(tmp_path))
    router.load(["reloadapp.h"])
    router.RELOAD = True
    import sys

    router.deliver(msg("a@x.org"))
    first = sys.modules["reloadapp.h"]
    assert first.SEEN == ["one"]
    router.deliver(msg("a@x.org"))
    assert sys.modules["reloadapp.h"].SEEN == ["one", "one"]  # unchanged file: not reloaded
    handler.write_text(template.format(word="two"))  # same size, same second
    router.deliver(msg("a@x.org"))
    assert sys.modules["reloadapp.h"].SEEN == ["two"]
    for name in [n for n in sys.modules if n.startswith("reloadapp")]:
        del sys.modules[name]


def test_local_locks_serialise_threads(router: RouterClass) -> None:
    counter = {"n": 0}
    locks = LocalLocks(wait=30)

    def work() -> None:
        for _ in range(50):
            with locks.hold(["k"]):
                n = counter["n"]
                time.sleep(0)
                counter["n"] = n + 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter["n"] == 200
    assert locks._locks == {}


def test_ordering_is_registration_order(router: RouterClass) -> None:
    router.defaults(host="test\\.com")
    router.load([SAMPLE, "tests.router.handlers.noerror"])
    assert router.ORDER[-1] == "^fail@(?P<host>test\\.com)$"
    assert router.modules == [SAMPLE, "tests.router.handlers.noerror"]
