"""lamson.bounce as a Lamson 1.x application uses it: the analyzer's names and tables, and @bounce_to.

Written from 1.x's documented API: ``detect(msg)`` gives a ``BounceAnalyzer``
whose statuses are ``(code, text)`` pairs from the module's three tables,
``report`` lists the delivery report's field blocks, ``original`` is the
returned message, and ``@bounce_to(soft=..., hard=...)`` hands a bounce to
the state for its kind, whichever way it is stacked with ``@route``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lamson import bounce
from lamson.mail import MailRequest
from lamson.router import Router

Write = Callable[[str, str], Path]

#: An RFC 3464 report that returns the whole message (message/rfc822), as Postfix does on request.
FULL_RETURN = """\
Return-Path: <>
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: list-bounce@test.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="R"

--R
Content-Type: text/plain

Your message could not be delivered.

--R
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; %(rcpt)s
Action: %(action)s
Status: %(status)s
Remote-MTA: dns; mail.example.net
Diagnostic-Code: smtp; %(reply)s

--R
Content-Type: message/rfc822

From: list@test.com
To: %(rcpt)s
Subject: the post

The body.
--R--
"""


def dsn(rcpt: str = "gone@example.net", status: str = "5.1.1", action: str = "failed",
        reply: str = "550 5.1.1 no such user", to: str = "alice@test.com", sender: str = "") -> MailRequest:
    text = FULL_RETURN % {"rcpt": rcpt, "status": status, "action": action, "reply": reply}
    return MailRequest("fakepeer", sender, to, text)


def regular(to: str = "alice@test.com") -> MailRequest:
    return MailRequest("fakepeer", "reader@example.org", to,
                       f"From: reader@example.org\nTo: {to}\nSubject: hi\n\nJust a note.\n")


def test_status_tables_have_1x_texts() -> None:
    assert bounce.PRIMARY_STATUS_CODES["5"] == "Permanent Failure"
    assert bounce.PRIMARY_STATUS_CODES["4"] == "Persistent Transient Failure"
    assert bounce.SECONDARY_STATUS_CODES["1"] == "Addressing Status"
    assert bounce.SECONDARY_STATUS_CODES["5"] == "Mail Delivery Protocol Status"
    assert bounce.COMBINED_STATUS_CODES["11"] == "Bad destination mailbox address"
    assert bounce.COMBINED_STATUS_CODES["22"] == "Mailbox full"
    assert set(bounce.SECONDARY_STATUS_CODES) == {str(n) for n in range(8)}


def test_detect_on_a_regular_message_gives_1x_empty_results() -> None:
    report = bounce.detect(regular())
    assert isinstance(report, bounce.BounceAnalyzer)
    assert report.score == 0.0 and not report.probable()
    assert report.primary_status == (None, None)
    assert report.secondary_status == (None, None)
    assert report.combined_status == (None, None)
    # 1.x wrote this one as a list; both spellings compare equal.
    assert report.diagnostic_codes == [None, None]  # type: ignore[comparison-overlap]  # 1.x compared lists
    assert report.diagnostic_codes == (None, None)
    assert report.primary_status == [None, None]  # type: ignore[comparison-overlap]
    assert (report.remote_mta, report.reporting_mta, report.final_recipient, report.action) == (None,) * 4
    assert report.headers == {}
    assert report.report is None and report.original is None
    assert not report.is_hard() and not report.is_soft()
    assert report.error_for_humans() == "No status codes found in bounce message."


def test_hard_bounce_analysis() -> None:
    msg = dsn()
    assert msg.is_bounce()
    report = msg.bounce
    assert report.probable() and report.is_hard() and not report.is_soft()
    assert report.primary_status == (5, "Permanent Failure")
    assert report.secondary_status == (1, "Addressing Status")
    assert report.combined_status == (11, "Bad destination mailbox address")
    assert report.diagnostic_codes == ("550", "5.1.1 no such user")
    assert report.final_recipient == "gone@example.net"
    assert report.remote_mta == "mail.example.net" and report.reporting_mta == "mx.example.net"
    assert report.action == "failed"
    assert report.headers["Status"] == ["5.1.1"]
    assert report.headers["Final-Recipient"] == ["rfc822; gone@example.net"]
    assert report.headers["Remote-Mta"] == ["dns; mail.example.net"]
    # report: the delivery report's field blocks, the per-message one first.
    assert isinstance(report.report, list) and len(report.report) == 2
    assert report.report[0]["Reporting-MTA"] == "dns; mx.example.net"
    assert report.report[1]["Action"] == "failed"
    # original: the returned message itself.
    assert report.original is not None
    assert report.original["to"] == "gone@example.net"
    assert report.original["subject"] == "the post"
    assert report.original.body().strip() == "The body."
    assert "could not be delivered" in str(report.notification)
    assert report.content_parts["original"] is report.original
    text = report.error_for_humans()
    assert "Permanent Failure" in text and "Bad destination mailbox address" in text


def test_soft_bounce_analysis() -> None:
    report = dsn(status="4.2.2", action="delayed", reply="452 4.2.2 mailbox full").bounce
    assert report.is_soft() and not report.is_hard()
    assert report.primary_status == (4, "Persistent Transient Failure")
    assert report.secondary_status == (2, "Mailbox Status")
    assert report.combined_status == (22, "Mailbox full")


def test_statuses_are_settable_and_decide_hard_or_soft() -> None:
    report = dsn().bounce
    report.primary_status = (4, bounce.PRIMARY_STATUS_CODES["4"])
    assert report.primary_status == (4, "Persistent Transient Failure")
    assert report.is_soft() and not report.is_hard()
    report.primary_status = (5, bounce.PRIMARY_STATUS_CODES["5"])
    assert report.is_hard()
    report.secondary_status = (2, "Mailbox Status")
    report.combined_status = (22, "Mailbox full")
    assert (report.secondary_status, report.combined_status) == ((2, "Mailbox Status"), (22, "Mailbox full"))
    report.primary_status = (None, None)
    assert report.is_soft()  # 1.x: a bounce with no status is soft
    assert report.error_for_humans() == "No status codes found in bounce message."


def test_probable_threshold() -> None:
    report = dsn().bounce
    assert report.probable(0.9) and not report.probable(1.01)
    assert not bounce.detect(regular()).probable(0.0001)


#: 1.x's bounce handling, with @bounce_to %(order)s @route; the bounce states live in their own module.
LIST = '''\
from lamson.routing import route, Router
from lamson.bounce import bounce_to
from app.handlers import bouncing

SEEN = []


%(decorators)s
def START(message, address=None, host=None):
    SEEN.append(("start", address))
    return POSTING


@route("(address)@(host)", address=".+")
def POSTING(message, address=None, host=None):
    SEEN.append(("posting", address))
'''

BOUNCING = '''\
from lamson.routing import route

SEEN = []


@route(".+")
def SOFT_BOUNCED(message):
    SEEN.append(("soft", message.bounce.final_recipient, message.bounce.primary_status))


@route(".+")
def HARD_BOUNCED(message):
    SEEN.append(("hard", message.bounce.final_recipient, message.bounce.combined_status))
    return HARD_DONE


@route(".+")
def HARD_DONE(message):
    SEEN.append(("after hard", sorted(message.route_to)))
    return None
'''

ROUTE = '@route("(address)@(host)", address=".+")'
BOUNCE_TO = "@bounce_to(soft=bouncing.SOFT_BOUNCED, hard=bouncing.HARD_BOUNCED)"


def boot(write: Write, handlers: list[str]) -> Any:
    """The guide's testing boot with these handler modules."""
    settings_text = Path("config/settings.py").read_text()
    write("config/settings.py", settings_text.replace("handlers = ['app.handlers.sample']", f"handlers = {handlers!r}"))
    from lamson.utils import import_settings

    return import_settings(True, boot_module="config.testing")


@pytest.mark.parametrize("order", ["under", "over"])
def test_bounce_to_runs_the_bounce_states(guide_project: Write, order: str) -> None:
    decorators = f"{ROUTE}\n{BOUNCE_TO}" if order == "under" else f"{BOUNCE_TO}\n{ROUTE}"
    guide_project("app/handlers/bouncing.py", BOUNCING)
    guide_project("app/handlers/mylist.py", LIST % {"order": order, "decorators": decorators})
    boot(guide_project, ["app.handlers.bouncing", "app.handlers.mylist"])
    mylist, bouncing = sys.modules["app.handlers.mylist"], sys.modules["app.handlers.bouncing"]

    daemon = "mailer-daemon@mx.example.net"
    Router.deliver(dsn(to="alice@test.com", sender=daemon))
    Router.deliver(dsn(rcpt="full@example.org", status="4.2.2", action="delayed", to="bob@test.com"))
    # The bounces ran the bounce states and nothing else; the list module's START did not run.
    assert mylist.SEEN == []
    assert bouncing.SEEN == [
        ("hard", "gone@example.net", (11, "Bad destination mailbox address")),
        ("soft", "full@example.org", (4, "Persistent Transient Failure")),
    ]
    # HARD_BOUNCED's answer became its module's state for that sender (1.x: the returned state is set).
    assert Router.get_state("app.handlers.bouncing", dsn(sender=daemon)) == "HARD_DONE"
    assert Router.get_state("app.handlers.mylist", dsn(sender=daemon)) == "START"
    Router.deliver(dsn(to="alice@test.com", sender=daemon))
    assert bouncing.SEEN[-1] == ("after hard", ["alice@test.com"])
    # A regular message goes to the decorated state with its captures, which moves on as usual.
    Router.deliver(regular("carol@test.com"))
    Router.deliver(regular("carol@test.com"))
    assert mylist.SEEN == [("start", "carol"), ("posting", "carol")]
