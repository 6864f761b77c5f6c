"""Handler files written against the Lamson 1.x API (one-shot blog, bounces, refusals), routed in-process."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lamson.mail import MailRequest
from lamson.router import Router

Write = Callable[[str, str], Path]

DATA = Path(__file__).resolve().parent.parent / "shared" / "data" / "bounces"

#: The one-shot blog's posting handler, in the shape the guide's `lamson routes -test` shows.
BLOG = '''\
from lamson.routing import route, route_like, stateless, nolocking
from config.settings import relay
from lamson import view

POSTS = {}


@route("(post_name)@(host)")
@route("(post_name)-(action)@(host)", action="delete")
def START(message, post_name=None, host=None, action=None):
    if action == "delete":
        POSTS.pop(post_name, None)
        return START
    POSTS[post_name] = message.body()
    return POSTING


@route_like(START)
def POSTING(message, post_name=None, host=None, action=None):
    POSTS[post_name] = POSTS.get(post_name, "") + message.body()
    return POSTING


@route("(post_name)-(action)@(host)", action="delete")
@stateless
@nolocking
def AUDIT(message, post_name=None, host=None, action=None):
    AUDIT.seen.append((post_name, action))


AUDIT.seen = []
'''

#: Issue 10's two routes, as a 1.x handler file.
STEPS = '''\
from lamson.routing import route

SEEN = []


@route("(a)-next@(host)", a="[a-z]+")
def NEXT(message, a=None, host=None):
    SEEN.append("NEXT")
    return END


@route("(a)@(host)", a="[a-z.-]+")
def START(message, a=None, host=None):
    SEEN.append("START")
    return NEXT


@route("(a)@(host)", a="[a-z.-]+")
def END(message, a=None, host=None):
    SEEN.append("END")
    return START
'''

#: 1.x's bounce handling: START under @bounce_to, bounce states routed on ".+".
BOUNCES = '''\
from lamson.routing import route, route_like, Router
from lamson.bounce import bounce_to

SEEN = []


@route(".+")
def SOFT_BOUNCED(message):
    SEEN.append(("soft", message.bounce.final_recipient, message.bounce.primary_status))
    return START


@route(".+")
def HARD_BOUNCED(message):
    SEEN.append(("hard", message.bounce.final_recipient, message.bounce.combined_status))
    return START


@route("(address)@(host)", address=".+")
@bounce_to(soft=SOFT_BOUNCED, hard=HARD_BOUNCED)
def START(message, address=None, host=None):
    SEEN.append(("start", address))
    return START
'''

#: A handler refusing a message with an SMTP code, as 1.x handlers did.
REFUSING = '''\
from lamson.routing import route
from lamson.server import SMTPError


@route("closed@(host)")
def START(message, host=None):
    raise SMTPError(550, "This list is closed")
'''


def incoming(to: str, sender: str = "reader@example.org", body: str = "Hi there.") -> MailRequest:
    return MailRequest("fakepeer", sender, to, f"From: {sender}\nTo: {to}\nSubject: hi\n\n{body}\n")


def boot(write: Write, handlers: list[str], extra_defaults: str = "", store: str = "") -> Any:
    """The guide's testing boot, with these handler modules (and optionally another state store)."""
    defaults = "router_defaults = {'host': 'test\\\\.com'"
    settings_text = Path("config/settings.py").read_text()
    assert defaults in settings_text and "handlers = ['app.handlers.sample']" in settings_text
    settings_text = settings_text.replace("handlers = ['app.handlers.sample']", f"handlers = {handlers!r}")
    settings_text = settings_text.replace(defaults, defaults + extra_defaults)
    write("config/settings.py", settings_text)
    if store:
        testing = Path("config/testing.py").read_text()
        write("config/testing.py", testing.replace("Router.defaults(", store + "\nRouter.defaults(", 1))
    from lamson.utils import import_settings

    return import_settings(True, boot_module="config.testing")


def test_one_shot_blog_stacked_routes(guide_project: Write) -> None:
    guide_project("app/handlers/blog.py", BLOG)
    boot(guide_project, ["app.handlers.blog"], extra_defaults=", 'post_name': '[a-zA-Z0-9][a-zA-Z0-9.]+'")
    blog = sys.modules["app.handlers.blog"]
    Router.deliver(incoming("first.post@test.com", body="Hello"))
    assert "Hello" in blog.POSTS["first.post"]
    assert Router.get_state("app.handlers.blog", incoming("x@test.com")) == "POSTING"
    Router.deliver(incoming("first.post@test.com", body="More"))
    assert "More" in blog.POSTS["first.post"]
    Router.clear_states()
    Router.deliver(incoming("first.post-delete@test.com"))  # the second (bottom) route
    assert "first.post" not in blog.POSTS
    assert blog.AUDIT.seen == [("first.post", "delete")]
    assert Router.get_state("app.handlers.blog", incoming("x@test.com")) == "START"


def test_one_stateful_function_per_message(guide_project: Write) -> None:
    guide_project("app/handlers/steps.py", STEPS)
    boot(guide_project, ["app.handlers.steps"])
    steps = sys.modules["app.handlers.steps"]
    Router.deliver(incoming("x@test.com"))
    Router.deliver(incoming("x-next@test.com"))  # in NEXT: NEXT runs, END waits for the next message
    assert steps.SEEN == ["START", "NEXT"]
    assert Router.get_state("app.handlers.steps", incoming("x@test.com")) == "END"
    Router.deliver(incoming("x@test.com"))
    assert steps.SEEN == ["START", "NEXT", "END"]


def test_bounce_to_with_one_argument_bounce_handlers(guide_project: Write) -> None:
    guide_project("app/handlers/bounces.py", BOUNCES)
    boot(guide_project, ["app.handlers.bounces"])
    bounces = sys.modules["app.handlers.bounces"]
    hard = MailRequest("fakepeer", "", "alice@test.com", (DATA / "hard_5.1.1.eml").read_bytes())
    soft = MailRequest("fakepeer", "", "alice@test.com", (DATA / "soft_4.2.2.eml").read_bytes())
    Router.deliver(hard)
    Router.deliver(soft)
    Router.deliver(incoming("alice@test.com"))
    assert bounces.SEEN == [
        ("hard", "nobody@example.net", (11, "Bad destination mailbox address")),
        ("soft", "full@example.org", (4, "Persistent Transient Failure")),
        ("start", "alice"),
    ]


def test_smtp_error_reaches_the_test_with_log_exceptions_off(guide_project: Write) -> None:
    from lamson.server import SMTPError

    guide_project("app/handlers/refusing.py", REFUSING)
    boot(guide_project, ["app.handlers.refusing"])
    with pytest.raises(SMTPError) as info:
        Router.deliver(incoming("closed@test.com"))
    assert str(info.value) == "550 This list is closed"


def test_shelve_storage_set_in_the_boot(guide_project: Write) -> None:
    guide_project("app/handlers/steps.py", STEPS)
    boot(guide_project, ["app.handlers.steps"],
         store="from lamson.routing import ShelveStorage\nRouter.STATE_STORE = ShelveStorage('run/states')")
    from lamson.routing import ShelveStorage

    Router.deliver(incoming("x@test.com"))
    assert ShelveStorage("run/states").get("app.handlers.steps", "reader@example.org") == "NEXT"
