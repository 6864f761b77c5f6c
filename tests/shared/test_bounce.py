"""lamson.bounce: DSN parsing, non-standard bounces, @bounce_to and the RFC 3834 auto-reply rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamson import bounce
from lamson.bounce import auto_reply_allowed, auto_reply_refusal, bounce_to, status_meaning
from lamson.mail import MailRequest

DATA = Path(__file__).parent / "data" / "bounces"


def sample(name: str, sender: str | None = "") -> MailRequest:
    return MailRequest("peer", sender, "alice@example.com", (DATA / name).read_bytes())


def test_standard_hard_dsn() -> None:
    msg = sample("hard_5.1.1.eml")
    assert msg.is_bounce()
    report = msg.bounce
    assert report.kind == "dsn" and report.score == 1.0
    assert report.status == "5.1.1" and report.status_code == (5, 1, 1)
    assert report.meaning == "Permanent failure: Bad destination mailbox address"
    assert report.final_recipient == "nobody@example.net"
    assert report.original_recipient == "nobody@example.net"
    assert report.reporting_mta == "mx.example.net"
    assert report.remote_mta == "mail.example.net"
    assert report.action == "failed"
    assert "User unknown" in (report.diagnostic_code or "")
    assert report.is_hard() and not report.is_soft()
    assert "nobody@example.net" in report.error_for_humans()


def test_standard_soft_dsn() -> None:
    report = sample("soft_4.2.2.eml").bounce
    assert report.kind == "dsn"
    assert report.status == "4.2.2" and report.action == "delayed"
    assert report.meaning == "Persistent transient failure: Mailbox full"
    assert report.final_recipient == "full@example.org"
    assert report.reporting_mta == "googlemail.com"
    assert report.is_soft() and not report.is_hard()


@pytest.mark.parametrize(
    ("name", "recipient", "status"),
    [
        ("qmail_nonstandard.eml", "gone@qmail.example.com", "5.1.1"),
        ("exim_nonstandard.eml", "nouser@exim.example.com", "5.0.0"),
    ],
)
def test_non_standard_bounces(name: str, recipient: str, status: str) -> None:
    msg = sample(name, sender=None)
    assert msg.is_bounce()
    report = msg.bounce
    assert report.kind == "heuristic"
    assert report.final_recipient == recipient
    assert report.status == status and report.is_hard()


def test_lamson1_analyzer_names_on_a_hard_dsn() -> None:
    report = sample("hard_5.1.1.eml").bounce
    assert report.probable() and report.probable(0.9) and not report.probable(1.01)
    assert report.primary_status == (5, "Permanent Failure")
    assert report.secondary_status == (1, "Addressing Status")
    assert report.combined_status == (11, "Bad destination mailbox address")
    code, text = report.diagnostic_codes
    assert code == "550" and text is not None and text.startswith("5.1.1 <nobody@example.net>")
    assert report.notification is not None and report.report is not None and report.original is not None
    assert "could not" in report.notification.get_payload()
    assert report.report_part is not None
    assert report.report_part.get_content_type() == "message/delivery-status"
    # report: the field blocks (per message, then per recipient); original: the returned headers.
    assert [block["Reporting-MTA"] for block in report.report][:1] == ["dns; mx.example.net"]
    assert report.report[1]["Status"] == "5.1.1"
    assert report.original_part is not None
    assert report.original_part.get_content_type() == "text/rfc822-headers"
    assert report.original["Subject"] == "hello" and report.original["To"] == "nobody@example.net"
    assert report.content_parts["report"] is report.report
    assert report.headers["Status"] == ["5.1.1"] and report.headers["Action"] == ["failed"]


def test_lamson1_analyzer_names_on_a_soft_dsn_and_a_normal_message() -> None:
    soft = sample("soft_4.2.2.eml").bounce
    assert soft.primary_status == (4, "Persistent Transient Failure")
    assert soft.combined_status == (22, "Mailbox full")
    normal = sample("normal.eml", sender="bob@example.org").bounce
    assert not normal.probable()
    assert normal.primary_status == normal.secondary_status == normal.combined_status == (None, None)
    assert normal.diagnostic_codes == (None, None)
    assert normal.notification is None and normal.report is None and normal.original is None


def test_non_standard_bounce_notification_is_its_text() -> None:
    report = sample("qmail_nonstandard.eml", sender=None).bounce
    assert report.notification is not None and report.report is None
    assert "gone@qmail.example.com" in report.notification.get_payload()


def test_normal_message_is_not_a_bounce() -> None:
    msg = sample("normal.eml", sender="bob@example.org")
    assert not msg.is_bounce()
    assert msg.bounce.score == 0 and not msg.bounce.is_hard() and not msg.bounce.is_soft()
    assert auto_reply_allowed(msg)


def test_status_meaning() -> None:
    assert status_meaning("5.7.1") == "Permanent failure: Delivery not authorized, message refused"
    assert status_meaning("4.4.1") == "Persistent transient failure: No answer from host"
    assert status_meaning("5.9.99") == "Permanent failure: Unknown status"
    assert status_meaning(None) == ""


def HARD(message: MailRequest) -> str:  # noqa: N802 - states are named in capitals
    """Lamson 1.x's bounce handler signature: the message only."""
    return "hard"


def SOFT(message: MailRequest) -> str:  # noqa: N802
    return "soft"


@bounce_to(soft=SOFT, hard=HARD)
def START(message: MailRequest, *args: object) -> str:  # noqa: N802
    """The decorated state."""
    return "start"


def test_bounce_to_routes_by_kind() -> None:
    assert START(sample("hard_5.1.1.eml")) == "hard"
    assert START(sample("soft_4.2.2.eml")) == "soft"
    assert START(sample("qmail_nonstandard.eml")) == "hard"
    assert START(sample("normal.eml", sender="bob@example.org"), "extra") == "start"
    # The route's captures go to the state, never to a bounce handler (1.x: handler(message)).
    assert START(sample("hard_5.1.1.eml"), address="nobody", host="test.com") == "hard"
    assert START.__name__ == "START" and START.__doc__ == "The decorated state."


def test_bounce_to_without_a_state_for_the_kind_falls_through() -> None:
    @bounce_to(hard=HARD)
    def STATE(message: MailRequest) -> str:  # noqa: N802
        return "state"

    assert STATE(sample("soft_4.2.2.eml")) == "state"
    assert STATE(sample("hard_5.1.1.eml")) == "hard"


def test_bounce_that_says_neither_hard_nor_soft_goes_to_soft() -> None:
    unclear = plain("Subject: Undeliverable: hello\r\nX-Failed-Recipients: gone@example.net\r\n", sender="")
    assert unclear.is_bounce()
    # No status code: soft, as in 1.x (unsubscribing on uncertain evidence would be worse).
    assert not unclear.bounce.is_hard() and unclear.bounce.is_soft()
    assert unclear.bounce.error_for_humans() == "No status codes found in bounce message."
    assert START(unclear) == "soft"


def plain(headers: str, sender: str | None = "bob@example.org") -> MailRequest:
    return MailRequest(
        "peer", sender, "alice@example.com", f"From: bob@example.org\r\n{headers}\r\nhello\r\n"
    )


@pytest.mark.parametrize(
    ("headers", "sender", "why"),
    [
        ("", "", "null envelope sender"),
        ("Return-Path: <>\r\n", None, "null Return-Path"),
        ("Auto-Submitted: auto-replied\r\n", "bob@example.org", "Auto-Submitted"),
        ("Auto-Submitted: auto-generated; owner-email=x@y\r\n", "bob@example.org", "Auto-Submitted"),
        ("Precedence: bulk\r\n", "bob@example.org", "Precedence: bulk"),
        ("Precedence: List\r\n", "bob@example.org", "Precedence: list"),
        ("Precedence: junk\r\n", "bob@example.org", "Precedence: junk"),
        ("List-Id: <dev.lists.example.org>\r\n", "bob@example.org", "mailing list"),
        ("List-Unsubscribe: <mailto:u@example.org>\r\n", "bob@example.org", "mailing list"),
        ("X-Auto-Response-Suppress: DR, OOF\r\n", "bob@example.org", "X-Auto-Response-Suppress"),
        ("X-Autoreply: yes\r\n", "bob@example.org", "autoresponder"),
        ("", "mailer-daemon@example.org", "mail system"),
        ("", "owner-dev@lists.example.org", "mail system"),
        ("", "dev-request@lists.example.org", "mail system"),
        # Every header is read, not only the first (issue 11, item 8).
        ("Auto-Submitted: no\r\nAuto-Submitted: auto-replied\r\n", "bob@example.org", "Auto-Submitted: auto-replied"),
        ("Precedence: first-class\r\nPrecedence: bulk\r\n", "bob@example.org", "Precedence: bulk"),
        # Comments are not part of the value (RFC 5322 CFWS), and case does not matter.
        ("Precedence: BULK (x)\r\n", "bob@example.org", "Precedence: bulk"),
        ("Precedence: (why (nested)) junk\r\n", "bob@example.org", "Precedence: junk"),
        ("Auto-Submitted: (c) Auto-Generated (by a robot)\r\n", "bob@example.org", "Auto-Submitted: auto-generated"),
        ("Auto-Submitted: no (but really) ; x=1\r\nAuto-Submitted: auto-notified\r\n", "bob@example.org",
         "Auto-Submitted: auto-notified"),
    ],
)
def test_auto_reply_refused(headers: str, sender: str | None, why: str) -> None:
    msg = plain(headers, sender)
    assert not auto_reply_allowed(msg)
    assert why in (auto_reply_refusal(msg) or "")


@pytest.mark.parametrize(
    "headers",
    ["", "Auto-Submitted: no\r\n", "Precedence: first-class\r\n", "X-Auto-Response-Suppress: DR, RN\r\n",
     "Auto-Submitted: No (a person wrote this)\r\nAuto-Submitted: no\r\n",
     "Precedence: first-class (bulk)\r\nPrecedence: normal\r\n"],
)
def test_auto_reply_allowed(headers: str) -> None:
    assert auto_reply_allowed(plain(headers))


def test_bounces_are_never_auto_replied() -> None:
    for name in ("hard_5.1.1.eml", "soft_4.2.2.eml", "qmail_nonstandard.eml", "exim_nonstandard.eml"):
        assert not auto_reply_allowed(sample(name, sender=None)), name


def test_strip_comments() -> None:
    from lamson.bounce import strip_comments

    assert strip_comments("BULK (x)") == "BULK"
    assert strip_comments("(a) bulk (b (c) d)") == "bulk"
    assert strip_comments("auto-replied (x) ; owner-email=a@b") == "auto-replied ; owner-email=a@b"
    assert strip_comments('"in (quotes)" x') == '"in (quotes)" x'
    assert strip_comments("bulk (never closed") == "bulk"
    assert strip_comments("bulk (\\) still a comment) list") == "bulk list"


@settings(max_examples=400, deadline=None)
@given(
    sender=st.sampled_from(["", "a@example.org", "MAILER-DAEMON@mx.example.org"]),
    from_=st.sampled_from(["Ann <a@example.org>", "Mail Delivery System <postmaster@x.org>", "b@y.org"]),
    subject=st.sampled_from(["hello", "Undelivered Mail Returned to Sender", "failure notice", "re: lunch"]),
    extra=st.lists(st.sampled_from(["Return-Path: <>", "Return-Path: <a@example.org>", "X-Failed-Recipients: x@y.org",
                                    "Content-Type: multipart/report; report-type=delivery-status; boundary=b",
                                    "Content-Type: text/plain", "X-Note: Delivery-Status fine"]), max_size=3),
    body=st.sampled_from(["hi", "The message could not be delivered: user unknown",
                          "--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--b--"]),
)
def test_the_quick_no_bounce_answer_never_disagrees_with_the_full_analysis(
        sender: str, from_: str, subject: str, extra: list[str], body: str) -> None:
    """is_bounce answers plain mail from its headers and a byte scan: always what detect() would say."""
    data = "\r\n".join([f"From: {from_}", "To: bot@test.com", f"Subject: {subject}", *extra, "", body, ""]).encode()
    quick = MailRequest("127.0.0.1", sender, "bot@test.com", data)
    full = MailRequest("127.0.0.1", sender, "bot@test.com", data)
    if bounce.surely_not_a_bounce(quick):
        assert bounce.detect(full).score == 0
    assert quick.is_bounce() == (bounce.detect(full).score >= 0.3)
    assert auto_reply_refusal(MailRequest("127.0.0.1", sender, "bot@test.com", data)) == \
        auto_reply_refusal(full)


def test_the_samples_and_an_edited_message_get_the_full_analysis() -> None:
    for path in sorted(DATA.glob("*.eml")):
        message = MailRequest("127.0.0.1", "a@b.org", "bot@test.com", path.read_bytes())
        assert message.is_bounce() == (path.name != "normal.eml")
    edited = MailRequest("127.0.0.1", "a@b.org", "bot@test.com", b"From: a@b.org\r\nSubject: hi\r\n\r\nhi\r\n")
    edited["Subject"] = "Undelivered Mail Returned to Sender"
    assert not bounce.surely_not_a_bounce(edited)


def test_an_edited_message_is_judged_by_what_it_says_now() -> None:
    """The quick answer scans the bytes received; after an edit is_bounce takes the full analysis."""
    edited = MailRequest("127.0.0.1", "a@b.org", "bot@test.com", b"From: a@b.org\r\nSubject: hi\r\n\r\nhi\r\n")
    assert not edited.is_bounce()
    edited = MailRequest("127.0.0.1", "a@b.org", "bot@test.com", b"From: a@b.org\r\nSubject: hi\r\n\r\nhi\r\n")
    edited["Content-Type"] = 'multipart/report; report-type=delivery-status; boundary="b"'
    assert bounce.surely_not_a_bounce(edited)  # the received bytes say nothing of a report...
    assert edited.is_bounce()  # ...the message as edited is one


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        # Issue 21, finding 10: a quoted value and white space before the colon each drew an auto-reply.
        ('Precedence: "bulk"\r\n', "Precedence: bulk"),
        ("Auto-submitted : auto-replied\r\n", "Auto-Submitted: auto-replied"),
        ("Auto-Submitted\t:\tauto-replied\r\n", "Auto-Submitted: auto-replied"),
        ("AUTO-SUBMITTED:\tAuto-Generated; foo=bar\r\n", "Auto-Submitted: auto-generated"),
        ("Auto-Submitted: auto-generated; foo=bar\r\n", "Auto-Submitted: auto-generated"),
        ('Auto-Submitted: "auto-replied"\r\n', "Auto-Submitted: auto-replied"),
        ("Auto-Submitted:\r\n\tauto-replied\r\n", "Auto-Submitted: auto-replied"),
        ("Auto-Submitted:\r\n", "Auto-Submitted: (empty)"),
        ('Precedence: "BULK" (a robot)\r\n', "Precedence: bulk"),
        ("Precedence:\tJunk\r\n", "Precedence: junk"),
        ("Precedence :list\r\n", "Precedence: list"),
        ('Precedence: "l\\ist"\r\n', "Precedence: list"),
        ("Precedence: auto_reply\r\n", "Precedence: auto_reply"),
        ("List-Id : <dev.lists.example.org>\r\n", "mailing list"),
        ("X-Auto-Response-Suppress : OOF\r\n", "X-Auto-Response-Suppress"),
        ("Return-Path : <>\r\n", "null Return-Path"),
        # A line the parser cannot read ends its header block; what follows is screened all the same.
        ("X-Odd Name: 1\r\nPrecedence: bulk\r\n", "Precedence: bulk"),
    ],
)
def test_auto_reply_screening_reads_values_and_names_as_a_robot_means_them(headers: str, why: str) -> None:
    msg = plain(headers)
    assert why in (auto_reply_refusal(msg) or ""), auto_reply_refusal(msg)
    assert not auto_reply_allowed(msg)


@pytest.mark.parametrize(
    "headers",
    ['Auto-Submitted: "no"\r\n', "Auto-Submitted : No (typed by a person)\r\n", 'Precedence: "first-class"\r\n',
     "Precedence : normal\r\n", "X-Precedence: bulk\r\n", "Subject: Precedence: bulk\r\n"],
)
def test_auto_reply_screening_still_answers_people(headers: str) -> None:
    assert auto_reply_allowed(plain(headers)), auto_reply_refusal(plain(headers))
