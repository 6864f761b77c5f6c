"""lamson.mail: the MailRequest / MailResponse contract other stages code against."""

from __future__ import annotations

import email.message

import pytest

from lamson.encoding import HeaderInjectionError
from lamson.mail import MailRequest, MailResponse, screen

SIMPLE = (
    b"From: Alice <Alice@Example.com>\r\n"
    b"To: list@example.org\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= time\r\n"
    b"X-Thing: one\r\n"
    b"X-Thing: two\r\n"
    b"\r\n"
    b"Hello there.\r\n"
)


def test_envelope_is_bare_and_lowercased() -> None:
    msg = MailRequest("127.0.0.1:5000", "<Alice@Example.COM>", " List@Example.org ", SIMPLE)
    assert (msg.Peer, msg.From, msg.To) == ("127.0.0.1:5000", "alice@example.com", "list@example.org")
    assert MailRequest(None, "<>", None, b"").From == ""
    assert MailRequest(None, None, None, b"").From is None


def test_data_and_original_are_the_bytes_unchanged() -> None:
    msg = MailRequest(None, "a@b", "c@d", SIMPLE)
    msg["Subject"] = "changed"
    assert msg.Data == SIMPLE and msg.original == SIMPLE
    assert b"Subject: changed" in msg.as_bytes()
    assert MailRequest(None, None, None, SIMPLE.decode()).Data == SIMPLE


def test_header_access_is_case_insensitive_and_decoded() -> None:
    msg = MailRequest(None, "a@b", "c@d", SIMPLE)
    assert msg["subject"] == msg["SUBJECT"] == "café time"
    assert "subject" in msg and "x-missing" not in msg
    assert msg["x-missing"] is None and msg.get("x-missing", "d") == "d"
    assert msg.keys() == ["From", "To", "Subject", "X-Thing", "X-Thing"]
    assert msg.get_all("x-thing") == ["one", "two"]
    msg["x-thing"] = "three"
    assert msg.get_all("X-Thing") == ["three"]
    del msg["X-THING"]
    assert "X-Thing" not in msg
    assert msg.addresses("from") == [("Alice", "Alice@Example.com")]


def test_body_parts_and_message() -> None:
    msg = MailRequest(None, "a@b", "c@d", SIMPLE)
    assert msg.body() == "Hello there.\n"
    assert isinstance(msg.to_message(), email.message.EmailMessage)
    assert msg.all_parts() == [] and list(msg.walk()) == []  # Lamson 1.x: a single-part message has no parts
    assert msg.attachments() == []
    assert not msg.is_bounce()


def test_request_header_injection_is_refused_or_neutralised() -> None:
    msg = MailRequest(None, "a@b", "c@d", SIMPLE)
    msg["Subject"] = "hi\r\nBcc: evil@example.com"
    assert msg["subject"] == "hi Bcc: evil@example.com" and "bcc" not in msg
    with pytest.raises(HeaderInjectionError):
        msg["To"] = "a@example.com\nBcc: evil@example.com"


def test_response_ascii_stays_7bit() -> None:
    resp = MailResponse(To="a@example.com", From="b@example.com", Subject="plain", Body="just ascii\n")
    raw = resp.as_bytes()
    assert raw.isascii() and b"Content-Transfer-Encoding: 7bit" in raw
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert bytes(resp).startswith(b"From: b@example.com\r\nTo: a@example.com\r\nSubject: plain\r\n")
    assert str(resp).startswith("From: ")


def test_response_headers_and_attachments() -> None:
    resp = MailResponse(
        To=["x@example.com", ("Ý Name", "y@example.com")], From="z@example.com", Subject="s", Body="b"
    )
    resp["Reply-To"] = "r@example.com"
    resp["Cc"] = "c@example.com"
    resp["Bcc"] = "d@example.com"
    resp.attach(filename="data.bin", content_type="application/octet-stream", data=b"\x00\xff" * 10)
    assert resp.recipients() == ["x@example.com", "y@example.com", "c@example.com", "d@example.com"]
    msg = MailRequest(None, None, None, resp.as_bytes())
    assert msg["reply-to"] == "r@example.com"
    assert msg.attachments()[0].data == b"\x00\xff" * 10
    assert isinstance(resp.to_message(), email.message.EmailMessage)


def test_attach_all_parts_forwards_content() -> None:
    original = MailResponse(To="a@example.com", From="b@example.com", Subject="s", Body="text body")
    original.attach(filename="f.txt", data="file text")
    request = MailRequest(None, None, None, original.as_bytes())
    forward = MailResponse(To="c@example.com", From="b@example.com", Subject="Fwd: s")
    forward.attach_all_parts(request)
    again = MailRequest(None, None, None, forward.as_bytes())
    assert again.body() == "text body"  # sent as given (Lamson 1.x), no line end added
    assert [(a.filename, a.data) for a in again.attachments()] == [
        ("f.txt", b"file text")
    ]  # text travels in canonical CRLF form


def test_screen_passes_normal_mail() -> None:
    assert screen(SIMPLE) is None
