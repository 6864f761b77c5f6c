"""lamson.mail behaviours Lamson 1.x applications rely on (issue 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamson import mail
from lamson.encoding import HeaderInjectionError
from lamson.mail import MailRequest, MailResponse

NO_HEADERS = b"Subject: no addresses\r\n\r\nbody\r\n"
HEADERS = (
    b"From: Ann Example <Ann@Example.COM>\r\n"
    b"To: List <List@Example.org>, other@example.net\r\n"
    b"Cc: third@example.com\r\n"
    b"Subject: hi\r\n\r\nbody\r\n"
)


# ---------------------------------------------------------------- address headers without stdlib support

@pytest.mark.parametrize("name", ["Return-Path", "Errors-To", "Delivered-To", "Disposition-Notification-To"])
def test_extra_address_headers_serialise_and_read_back(name: str) -> None:
    resp = MailResponse(To="a@example.com", From="b@example.com", Subject="s", Body="b")
    resp[name] = "bounces@example.com"
    raw = resp.as_bytes()
    assert raw.isascii()
    back = MailRequest(None, None, None, raw)
    assert [addr for _, addr in back.addresses(name)] == ["bounces@example.com"]
    assert resp.recipients() == ["a@example.com"]  # never a recipient


def test_return_path_is_an_angle_path_and_may_be_null() -> None:
    resp = MailResponse(To="a@example.com", From="b@example.com", Body="b")
    resp["Return-Path"] = ("Bounce Handler", "bounce@example.com")
    assert b"\r\nReturn-Path: <bounce@example.com>\r\n" in resp.as_bytes()
    resp["Return-Path"] = "<>"
    assert b"\r\nReturn-Path: <>\r\n" in resp.as_bytes()


def test_non_ascii_display_name_in_errors_to_is_encoded() -> None:
    resp = MailResponse(To="a@example.com", From="b@example.com", Body="b")
    resp["Disposition-Notification-To"] = [("Zoë Ünlü", "zoe@bücher.example"), "x@example.com"]
    raw = resp.as_bytes()
    assert raw.isascii()
    back = MailRequest(None, None, None, raw)
    assert back.addresses("disposition-notification-to") == [
        ("Zoë Ünlü", "zoe@xn--bcher-kva.example"),
        ("", "x@example.com"),
    ]


def test_extra_address_headers_still_refuse_injection() -> None:
    resp = MailResponse(To="a@example.com", From="b@example.com", Body="b")
    with pytest.raises(HeaderInjectionError):
        resp["Errors-To"] = "a@example.com\r\nBcc: victim@example.com"


# ---------------------------------------------------------------- envelope fills headers, route_to / route_from

def test_missing_from_and_to_headers_are_filled_from_the_envelope() -> None:
    msg = MailRequest("peer", "Sender@Example.com", "Rcpt@Example.org", NO_HEADERS)
    assert msg["from"] == "sender@example.com"
    assert msg["to"] == "rcpt@example.org"
    assert msg.Data == NO_HEADERS and msg.as_bytes() == NO_HEADERS  # the bytes received are untouched
    msg["Subject"] = "edited"
    assert b"From: sender@example.com" in msg.as_bytes()


def test_present_headers_are_not_replaced_by_the_envelope() -> None:
    msg = MailRequest("peer", "env@example.com", "rcpt@example.org", HEADERS)
    assert msg["from"] == "Ann Example <Ann@Example.COM>"
    assert msg.get_all("to") == ["List <List@Example.org>, other@example.net"]


def test_null_sender_fills_no_from_header() -> None:
    msg = MailRequest("peer", "<>", "rcpt@example.org", NO_HEADERS)
    assert msg.From == "" and msg["from"] is None and msg.route_from is None


def test_a_list_envelope_fills_every_recipient() -> None:
    msg = MailRequest("peer", "a@example.com", ["B@example.org", "<c@example.org>"], NO_HEADERS)
    assert msg.To == ["b@example.org", "c@example.org"]
    assert msg.addresses("to") == [("", "b@example.org"), ("", "c@example.org")]
    assert msg.route_to == {"b@example.org", "c@example.org"}


def test_route_to_and_route_from_follow_the_envelope_not_the_headers() -> None:
    msg = MailRequest("peer", "<Env@Example.COM>", "Only@Example.org", HEADERS)
    assert msg.route_to == {"only@example.org"}  # Cc third party never routed
    assert msg.route_from == "env@example.com"


def test_unknown_envelope_falls_back_to_the_headers_as_in_1x() -> None:
    msg = MailRequest("queue", None, None, HEADERS)
    assert msg.From == "ann@example.com" and msg.route_from == "ann@example.com"
    assert msg.To == ["list@example.org", "other@example.net"]
    assert msg.route_to == {"list@example.org", "other@example.net"}  # To only: never Cc
    single = MailRequest("queue", None, None, b"From: a@b.example\r\nTo: X@Y.example\r\n\r\nb")
    assert single.To == "x@y.example" and single.route_to == {"x@y.example"}


def test_routable_to_header_can_be_delivered_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mail, "ROUTABLE_TO_HEADER", "delivered-to")
    msg = MailRequest("queue", None, None, b"Delivered-To: box@example.org\r\n" + HEADERS)
    assert msg.route_to == {"box@example.org"}


def test_nothing_known_stays_none() -> None:
    msg = MailRequest(None, None, None, NO_HEADERS)
    assert msg.From is None and msg.To is None
    assert msg.route_to == set() and msg.route_from is None


def test_odd_envelope_never_becomes_header_syntax() -> None:
    msg = MailRequest("peer", "a@example.com", "x@example.org>\r\nBcc: v@example.net", NO_HEADERS)
    assert "bcc" not in msg


# ---------------------------------------------------------------- attach(filename=...) reads the file

def test_attach_filename_reads_the_file_at_render_time(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF first")
    resp = MailResponse(To="a@example.com", From="b@example.com", Subject="s", Body="see")
    resp.attach(filename=str(path))
    path.write_bytes(b"%PDF \x00\xff second")  # read when rendered, not when attached
    [att] = MailRequest(None, None, None, resp.as_bytes()).attachments()
    assert att == mail.Attachment("report.pdf", "application/pdf", b"%PDF \x00\xff second")
    assert resp.attachments[0]["disposition"] == "attachment"


def test_attach_missing_file_fails_when_rendering(tmp_path: Path) -> None:
    resp = MailResponse(To="a@example.com", From="b@example.com", Body="see")
    resp.attach(filename=tmp_path / "gone.txt")
    with pytest.raises(FileNotFoundError):
        resp.as_bytes()


def test_attach_needs_data_or_filename() -> None:
    with pytest.raises(ValueError):
        MailResponse().attach(content_type="text/plain")


# ---------------------------------------------------------------- forwarding keeps the MIME structure

def _alternative_request() -> MailRequest:
    original = MailResponse(To="a@example.com", From="b@example.com", Subject="s",
                            Body="plain words", Html="<p>html words</p>")
    return MailRequest("peer", "b@example.com", "a@example.com", original.as_bytes())


def test_forwarding_multipart_alternative_stays_alternative() -> None:
    forward = MailResponse(To="c@example.com", From="a@example.com", Subject="Fwd: s")
    forward.attach_all_parts(_alternative_request())
    again = MailRequest(None, None, None, forward.as_bytes())
    top = again.to_message()
    assert top.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in top.iter_parts()] == ["text/plain", "text/html"]
    assert again.body() == "plain words"
    assert again.attachments() == []


def test_forwarding_with_a_note_nests_the_alternative_whole() -> None:
    forward = MailResponse(To="c@example.com", From="a@example.com", Subject="Fwd: s", Body="FYI")
    forward.attach_all_parts(_alternative_request())
    top = MailRequest(None, None, None, forward.as_bytes()).to_message()
    assert top.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in top.iter_parts()] == ["text/plain", "multipart/alternative"]


def test_forwarding_a_single_part_message_keeps_only_its_content_headers() -> None:
    request = MailRequest("peer", "b@example.com", "a@example.com",
                          b"From: b@example.com\r\nReceived: from x\r\nSubject: secret subject\r\n"
                          b"Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n")
    forward = MailResponse(To="c@example.com", From="a@example.com", Subject="Fwd")
    forward.attach_all_parts(request)
    raw = forward.as_bytes()
    assert b"Received:" not in raw and b"secret subject" not in raw
    assert MailRequest(None, None, None, raw).body() == "hello\n"


def test_clear_drops_forwarded_parts() -> None:
    forward = MailResponse(To="c@example.com", From="a@example.com", Body="only me")
    forward.attach_all_parts(_alternative_request())
    forward.clear()
    assert MailRequest(None, None, None, forward.as_bytes()).to_message().get_content_type() == "text/plain"
