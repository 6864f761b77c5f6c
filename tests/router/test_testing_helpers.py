"""lamson.testing: an application's tests in-process, no servers, no Redis."""

from __future__ import annotations

import io

import pytest

from lamson.router import RouterClass
from lamson.router.report import routes
from lamson.testing import RouterConversation, assert_in_state, clear_queue, delivered, make_message, queue

REPLIER = "tests.router.handlers.replier"


@pytest.fixture
def app(router: RouterClass) -> RouterClass:
    router.defaults(host="test\\.com")
    router.load([REPLIER, "tests.router.handlers.sample"])
    return router


def test_conversation_say_expect_and_state(app: RouterClass, project_dir: object) -> None:
    client = RouterConversation("Tester <Tester@Example.org>", "Hello")
    client.timeout = 0.2  # captured replies are there at once; only the failing say below waits
    client.begin()
    reply = client.say("echo@test.com", "ping", expect="tester@example.org")
    assert reply["subject"] == "Re: Hello"
    assert "you said: ping" in reply.body()
    assert_in_state(REPLIER, "echo@test.com", "tester@example.org", "CONFIRMED")
    client.say("echo@test.com", "again", expect="tester@")
    assert [m["subject"] for m in queue()] == ["Re: Hello", "again"]
    assert delivered("tester@", body="welcome back")["subject"] == "again"
    assert delivered("somebody-else@") is False
    with pytest.raises(AssertionError, match="expected a message"):
        clear_queue()
        client.say("nobody@elsewhere.org", "x", expect="tester@")
    client.begin()
    assert_in_state(REPLIER, "echo@test.com", "tester@example.org", "START")
    with pytest.raises(AssertionError, match="expected 'END'"):
        assert_in_state(REPLIER, "echo@test.com", "tester@example.org", "END")


def test_routes_report_and_test_address(app: RouterClass) -> None:
    out = io.StringIO()
    assert routes(out) == 0
    text = out.getvalue()
    assert "Routing ORDER: ['^(?P<address>echo|help)@(?P<host>test\\\\.com)$'" in text
    assert "tests.router.handlers.sample.START  tests.router.handlers.sample.NEW_USER" in text
    assert "tests.router.handlers.sample.FORWARD (stateless)" in text

    out = io.StringIO()
    assert routes(out, test="news-subscribe@test.com") == 0
    text = out.getvalue()
    assert "TEST address 'news-subscribe@test.com' matches:" in text
    assert "{'list_name': 'news', 'action': 'subscribe', 'host': 'test.com'}" in text
    assert "tests.router.handlers.sample.FORWARD: runs always (stateless)" in text
    assert "tests.router.handlers.sample.START: runs when the sender is in state START" in text
    assert "replier" not in text.split("TEST address")[1]

    out = io.StringIO()
    assert routes(out, test="nobody@nowhere.org") == 1
    assert "matches no route" in out.getvalue()


def test_lamson_router_fixture_restores_routes_and_state(app: RouterClass) -> None:
    from lamson.testing.fixtures import lamson_router

    app.set_state(REPLIER, make_message("a@example.org", "echo@test.com"), "CONFIRMED")
    before = app.ORDER
    fixture = lamson_router.__wrapped__()  # the generator pytest would drive
    inside = next(fixture)
    assert inside.ORDER == before  # the application's routes are kept
    assert inside.get_state(REPLIER, make_message("a@example.org", "echo@test.com")) == "START"
    inside.clear_routes()
    with pytest.raises(StopIteration):
        next(fixture)
    assert app.ORDER == before
    assert app.get_state(REPLIER, make_message("a@example.org", "echo@test.com")) == "CONFIRMED"
