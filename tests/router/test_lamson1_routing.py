"""Lamson 1.x routing rules: one stateful function per message, stacked routes, 1.x names."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from lamson.mail import MailRequest
from lamson.queue import Queue
from lamson.router import RouterClass, RoutingError, route
from lamson.router.report import routes
from lamson.testing import make_message
from tests.router.handlers import blog, sample, twostep

TWOSTEP = "tests.router.handlers.twostep"
BLOG = "tests.router.handlers.blog"
SAMPLE = "tests.router.handlers.sample"


def msg(to: str, subject: str = "hi", sender: str = "joe@example.org") -> MailRequest:
    return make_message(sender, to, subject, "body")


@pytest.fixture
def two(router: RouterClass) -> RouterClass:
    router.defaults(host="test\\.com")
    router.load([TWOSTEP])
    return router


def test_issue_10_reproduction_one_stateful_function_per_message(two: RouterClass) -> None:
    """A NEXT returning END and a catch-all END: one message runs NEXT only."""
    two.set_state(TWOSTEP, msg("x@test.com"), "NEXT")
    assert two.deliver(msg("x-next@test.com")) == 1
    assert twostep.CALLS == ["NEXT"]
    # The state NEXT returned is for the next message, not this one.
    assert two.get_state(TWOSTEP, msg("x@test.com")) == "END"
    two.deliver(msg("x@test.com"))
    assert twostep.CALLS == ["NEXT", "END"]
    assert two.get_state(TWOSTEP, msg("x@test.com")) == "START"


def test_first_stateful_function_in_state_wins_across_routes(two: RouterClass) -> None:
    # In START: the x-next route's NEXT is not in state, so the walk goes on to the
    # catch-all route and runs START there, and only START.
    assert two.deliver(msg("x-next@test.com")) == 1
    assert twostep.CALLS == ["START"]
    assert two.get_state(TWOSTEP, msg("x@test.com")) == "NEXT"


def test_select_lists_what_will_run_without_running_it(two: RouterClass) -> None:
    two.set_state(TWOSTEP, msg("x@test.com"), "NEXT")
    chosen = two.select(msg("x-next@test.com"))
    assert [(f.__name__, captures) for f, captures in chosen] == [("NEXT", {"a": "x", "host": "test.com"})]
    assert twostep.CALLS == []


def test_stateless_functions_of_every_matched_route_still_run(router: RouterClass) -> None:
    router.defaults(host="test\\.com")
    router.load([SAMPLE])
    router.set_state(SAMPLE, msg("x@test.com"), "RUNNING")
    assert router.deliver(msg("news-subscribe@test.com")) == 2
    assert [name for name, _ in sample.CALLS] == ["RUNNING", "FORWARD"]


def test_one_stateful_function_across_modules(router: RouterClass) -> None:
    """Two modules both in state on one address: the first loaded runs, the other waits."""
    router.defaults(host="test\\.com")
    router.load([SAMPLE, TWOSTEP])
    assert router.deliver(msg("x@test.com")) == 1
    assert [name for name, _ in sample.CALLS] == ["START"] and twostep.CALLS == []
    assert router.get_state(TWOSTEP, msg("x@test.com")) == "START"


def test_each_recipient_gets_its_own_stateful_function(two: RouterClass) -> None:
    m = msg("a@test.com")
    m.To = ["a@test.com", "b@test.com"]
    # Same sender and module: the first recipient moves the conversation to NEXT, which
    # the second recipient's routing then sees (Lamson 1.x routes recipients in turn).
    # b@ is on the catch-all route, where no function is named NEXT: nothing runs for it.
    assert two.deliver(m) == 1
    assert twostep.CALLS == ["START"]
    assert two.get_state(TWOSTEP, msg("x@test.com")) == "NEXT"
    m.To = ["b-next@test.com", "c@test.com"]
    assert two.deliver(m) == 2
    assert twostep.CALLS == ["START", "NEXT", "END"]


# -- stacked routes ----------------------------------------------------------


@pytest.fixture
def oneshot(router: RouterClass) -> RouterClass:
    router.defaults(host="oneshotblog\\.com", post_name="[a-zA-Z0-9][a-zA-Z0-9.]+")
    router.load([BLOG])
    return router


def test_stacked_routes_register_both_bottom_first(oneshot: RouterClass) -> None:
    delete_regex = "^(?P<post_name>[a-zA-Z0-9][a-zA-Z0-9.]+)-(?P<action>delete)@(?P<host>oneshotblog\\.com)$"
    post_regex = "^(?P<post_name>[a-zA-Z0-9][a-zA-Z0-9.]+)@(?P<host>oneshotblog\\.com)$"
    assert oneshot.ORDER == [delete_regex, post_regex]
    table = oneshot.TABLE
    assert [f.__name__ for f in table[delete_regex]] == ["START", "AUDIT"]
    # route_like copies the recorded route, the topmost one only.
    assert [f.__name__ for f in table[post_regex]] == ["START", "POSTING"]


def test_mail_to_either_stacked_route_reaches_the_function(oneshot: RouterClass) -> None:
    assert oneshot.deliver(msg("first.post-delete@oneshotblog.com")) == 2
    assert blog.CALLS[0] == ("START", {"post_name": "first.post", "host": "oneshotblog.com", "action": "delete"})
    assert blog.CALLS[1] == ("AUDIT", {"post_name": "first.post", "action": "delete"})
    oneshot.clear_states()
    assert oneshot.deliver(msg("first.post@oneshotblog.com")) == 1
    assert blog.CALLS[2] == ("START", {"post_name": "first.post", "host": "oneshotblog.com", "action": None})
    # Now in POSTING, which is not on the delete route: only the stateless AUDIT runs there.
    assert oneshot.deliver(msg("first.post-delete@oneshotblog.com")) == 1
    assert [name for name, _ in blog.CALLS] == ["START", "AUDIT", "START", "AUDIT"]


def test_stacked_route_spec_records_the_top_route() -> None:
    from lamson.router.decorators import spec_of

    spec = spec_of(blog.START)
    assert spec is not None
    assert spec.pattern == "(post_name)@(host)" and spec.captures == {}
    assert spec.routes == [("(post_name)-(action)@(host)", {"action": "delete"}), ("(post_name)@(host)", {})]


def test_lamson_routes_shows_a_stacked_function_under_both_routes(oneshot: RouterClass) -> None:
    out = io.StringIO()
    assert routes(out, test="hello-delete@oneshotblog.com", router=oneshot) == 0
    text = out.getvalue()
    assert text.count("tests.router.handlers.blog.START") == 3  # both table rows, and the -test match
    assert "'action': 'delete'" in text


# -- 1.x names on the Router ---------------------------------------------------


def test_in_state_and_in_error(router: RouterClass, tmp_path) -> None:
    router.defaults(host="test\\.com")
    router.load([SAMPLE])
    router.UNDELIVERABLE_QUEUE = Queue(tmp_path / "u")
    m = msg("a@test.com", subject="boom")
    assert router.in_state(sample.START, m) and not router.in_state(sample.RUNNING, m)
    assert not router.in_error(sample.START, m)
    router.set_state(SAMPLE, m, sample.RUNNING)
    assert router.in_state(sample.RUNNING, m)
    router.deliver(m)  # RUNNING raises on "boom": the module goes to ERROR
    assert router.in_error(sample.RUNNING, m) and router.in_state(sample.ERROR, m)


def test_registered_default_captures_handlers_and_register_route(router: RouterClass) -> None:
    router.defaults(host="test\\.com")
    router.load([TWOSTEP])
    assert router.DEFAULT_CAPTURES == {"host": "test\\.com"}
    assert list(router.REGISTERED) == router.ORDER
    regex, funcs = router.REGISTERED[router.ORDER[1]]
    assert regex.match("x@test.com") and [f.__name__ for f in funcs] == ["START", "END"]
    assert router.HANDLERS[TWOSTEP](TWOSTEP, msg("x@test.com")) == TWOSTEP

    seen = []

    def START(message, host=None):  # noqa: N802 - in state START: this test module's conversation
        seen.append(host)

    router.register_route("post_master@(host)", START)  # not on twostep's catch-all
    assert router.ORDER[-1] == "^post_master@(?P<host>test\\.com)$"
    router.deliver(msg("post_master@test.com"))
    assert seen == ["test.com"]
    # A known regex gets the function appended and keeps its place in ORDER.
    router.register_route("(a)@(host)", START, a="[a-z.-]+")
    assert router.TABLE[router.ORDER[1]] == [twostep.START, twostep.END, START]
    with pytest.raises(RoutingError, match=r"\(nocapture\)"):
        router.register_route("(nocapture)@(host)", START)


def test_default_captures_assignment_rebuilds_the_table(router: RouterClass) -> None:
    router.DEFAULT_CAPTURES = {"host": "example\\.org"}
    router.load([TWOSTEP])
    assert list(router.match("x@example.org"))
    router.DEFAULT_CAPTURES = {"host": "other\\.net"}
    assert not list(router.match("x@example.org")) and list(router.match("x@other.net"))


def test_lamson1_routing_base_is_the_router_class() -> None:
    from lamson.router import Router, RoutingBase

    assert isinstance(Router, RoutingBase)


# -- SMTPError: a handler refusing a message ----------------------------------


@pytest.fixture
def refusing(router: RouterClass, tmp_path, monkeypatch) -> Iterator[RouterClass]:
    pkg = tmp_path / "refusingapp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "h.py").write_text(
        "from lamson.routing import route, stateless\n"
        "from lamson.server import SMTPError\n"
        "CALLS = []\n"
        "@route('(who)@(host)', who='[a-z]+')\n"
        "@stateless\n"
        "def FIRST(message, who=None, host=None):\n"
        "    CALLS.append('FIRST')\n"
        "    if who == 'nobody':\n"
        "        raise SMTPError(550)\n"
        "@route('(who)@(host)', who='[a-z]+')\n"
        "def START(message, who=None, host=None):\n"
        "    CALLS.append('START')\n"
        "    return ERROR\n"
        "@route('(who)@(host)', who='[a-z]+')\n"
        "def ERROR(message, who=None, host=None):\n"
        "    CALLS.append('ERROR')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    router.defaults(host="test\\.com")
    router.load(["refusingapp.h"])
    yield router
    import sys

    for name in [n for n in sys.modules if n.startswith("refusingapp")]:
        del sys.modules[name]


def test_smtp_error_parks_the_message_and_stops_routing_it(refusing: RouterClass, tmp_path, caplog) -> None:
    import sys

    refusing.UNDELIVERABLE_QUEUE = Queue(tmp_path / "undeliverable")
    with caplog.at_level(logging.WARNING, logger="lamson.router"):
        assert refusing.deliver(msg("nobody@test.com", subject="refuse me")) == 1
    calls = sys.modules["refusingapp.h"].CALLS
    assert calls == ["FIRST"]  # START never ran: a refusal aborts the rest
    assert refusing.get_state("refusingapp.h", msg("x@test.com")) == "START"  # not ERROR: not a bug
    (key, kept), = list(refusing.UNDELIVERABLE_QUEUE)
    assert kept["X-Lamson-Reason"] == "refused by a handler: 550 Requested action not taken: mailbox unavailable"
    assert kept["subject"] == "refuse me"
    assert "refused by a handler" in caplog.text


def test_smtp_error_propagates_without_log_exceptions(refusing: RouterClass) -> None:
    from lamson.server import SMTPError

    refusing.LOG_EXCEPTIONS = False
    with pytest.raises(SMTPError) as info:
        refusing.deliver(msg("nobody@test.com"))
    assert info.value.code == 550
    refusing.deliver(msg("somebody@test.com"))
    import sys

    assert sys.modules["refusingapp.h"].CALLS == ["FIRST", "FIRST", "START"]


def test_route_decorator_returns_the_function_unchanged() -> None:
    def STATE(message):  # noqa: N802
        return None

    assert route("a@b")(route("c@d")(STATE)) is STATE
