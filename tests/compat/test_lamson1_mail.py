"""lamson.mail and lamson.encoding as Lamson 1.x applications use them (issue 22, "Mail model").

Written from 1.x's documented API: a body is sent as given, ``base`` is a ``MailBase``, the
``lamson.encoding`` converters, address headers that hold no address, ``None`` removing a header,
1.x's header-name spelling, ``all_parts()``/``walk()``, and mailing-list headers surviving a round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamson import encoding
from lamson.encoding import MailBase
from lamson.mail import MailRequest, MailResponse
from lamson.queue import Queue

LIST = "test.users@localhost"


def reply(**kwargs: Any) -> MailResponse:
    fields: dict[str, Any] = {"To": LIST, "From": "somedude@localhost", "Subject": "subject"}
    fields.update(kwargs)
    return MailResponse(**fields)


def back(resp: MailResponse) -> MailRequest:
    """What a 1.x test does: render the response and read it as received mail."""
    return MailRequest("localhost", "somedude@localhost", LIST, str(resp))


# ------------------------------------------------------------------ the body, as given


@pytest.mark.parametrize("body", ["The body.", "Zoë wrote this.", "two\nlines", "ends in a line end\n", ""])
def test_a_body_reads_back_exactly_as_given(body: str) -> None:
    resp = reply(Body=body)
    assert resp.base.body == body
    assert back(resp).body() == body


def test_the_rendered_payload_is_the_body_with_nothing_appended() -> None:
    raw = str(reply(Body="The body."))
    assert raw.endswith("\r\n\r\nThe body.")


def test_text_and_html_parts_are_as_given() -> None:
    msg = back(reply(Body="The body.", Html="<p>The body.</p>"))
    assert msg.body() == "The body."
    assert [part.body for part in msg.base.parts] == ["The body.", "<p>The body.</p>"]


def test_a_body_is_kept_through_a_queue(tmp_path: Path) -> None:
    queue = Queue(str(tmp_path / "queue"))
    key = queue.push(reply(Body="The body."))
    got = queue.get(key)
    assert got is not None and got.body() == "The body."
    popped_key, popped = queue.pop()
    assert popped_key == key and popped.body() == "The body."
    assert queue.count() == 0


# ------------------------------------------------------------------ base and lamson.encoding


def test_request_base_is_a_mailbase_with_content_encoding_and_parts() -> None:
    resp = reply(Body="The body.", Html="<p>The body.</p>")
    resp.attach(filename="notes.txt", data="some notes", content_type="text/plain")
    resp.attach(filename="pic.png", data=b"\x89PNG\x00\x01", content_type="image/png")
    msg = back(resp)
    base = msg.base
    assert isinstance(base, MailBase)
    assert base["subject"] == "subject" and base.headers["Subject"] == "subject"
    assert "Subject" in base.keys() and "Content-Type" not in base.keys()
    assert base.content_encoding["Content-Type"][0] == "multipart/mixed"
    assert "boundary" not in base.content_encoding["Content-Type"][1]
    assert base.body is None
    alternative, notes, picture = base.parts
    assert [p.content_encoding["Content-Type"][0] for p in alternative.parts] == ["text/plain", "text/html"]
    assert notes.body == "some notes"
    assert notes.content_encoding["Content-Disposition"] == ("attachment", {"filename": "notes.txt"})
    assert picture.body == b"\x89PNG\x00\x01"  # non-text content stays bytes
    assert [p.body for p in base.walk()] == [None, "The body.", "<p>The body.</p>", "some notes",
                                            b"\x89PNG\x00\x01"]


def test_request_base_follows_header_edits() -> None:
    msg = back(reply(Body="b"))
    assert msg.base["X-Tag"] is None
    msg["X-Tag"] = "seen"
    assert msg.base["X-Tag"] == "seen"


def test_response_base_serialises_to_json_as_an_archive_would() -> None:
    """A 1.x archive walks ``base`` (headers, body, content_encoding, parts) into JSON."""

    def build(base: MailBase) -> dict[str, Any]:
        ctype, params = base.content_encoding["Content-Type"]
        body = base.body
        return {
            "headers": base.headers,
            "type": ctype,
            "name": params.get("name"),
            "body": body.hex() if isinstance(body, bytes) else body,
            "parts": [build(part) for part in base.parts],
        }

    resp = reply(Body="Hello list.")
    resp.attach(filename="a.bin", data=b"\x00\xff", content_type="application/octet-stream")
    data = json.loads(json.dumps(build(resp.base)))
    assert data["headers"]["To"] == LIST and data["type"] == "multipart/mixed"
    assert [(p["type"], p["body"]) for p in data["parts"]] == [("text/plain", "Hello list."),
                                                               ("application/octet-stream", "00ff")]


def test_mailbase_built_by_hand_renders_and_reads_back() -> None:
    base = MailBase([("from", "Zoë <zoe@example.com>"), ("to", "list@example.com"), ("subject", "Grüße")])
    assert base.keys() == ["From", "To", "Subject"] and "FROM" in base and len(base) == 3
    base.content_encoding["Content-Type"] = ("multipart/mixed", {})
    base.attach_text("Hello.", "TEXT/PLAIN")
    base.attach_file("data.bin", b"\x01\x02", "application/octet-stream", "attachment")
    text = encoding.to_string(base)
    assert text.isascii()
    msg = MailRequest(None, None, None, text)
    assert msg["subject"] == "Grüße" and msg["from"] == "Zoë <zoe@example.com>"
    assert msg.body() == "Hello."
    assert [(a.filename, a.data) for a in msg.attachments()] == [("data.bin", b"\x01\x02")]
    again = encoding.from_string(text)
    assert again["Subject"] == "Grüße" and [p.body for p in again.parts] == ["Hello.", b"\x01\x02"]
    assert encoding.from_message(encoding.to_message(again)).parts[1].content_encoding["Content-Type"] == (
        "application/octet-stream", {"name": "data.bin"})
    del base["subject"]
    assert "Subject" not in base and bool(base) and not MailBase()


def test_encoding_error_exists_for_code_that_catches_it() -> None:
    assert issubclass(encoding.EncodingError, Exception)
    # Undecodable text falls back instead of raising it.
    assert encoding.from_string(b"Subject: x\r\nContent-Type: text/plain; charset=bogus\r\n\r\n\xff\xfe").body


# ------------------------------------------------------------------ address headers


def test_an_address_header_that_holds_no_address_is_stored_as_text() -> None:
    resp = reply(Body="b")
    resp["From"] = "zedshaw-AT-zedshaw.com"
    assert resp["From"] == "zedshaw-AT-zedshaw.com"
    assert back(resp)["From"] == "zedshaw-AT-zedshaw.com"


def test_none_removes_a_header() -> None:
    resp = reply(Body="b")
    resp["To"] = None
    assert "To" not in resp and resp["To"] is None and "\r\nTo:" not in str(resp)
    msg = back(reply(Body="b"))
    msg["Subject"] = None
    assert "subject" not in msg


def test_setting_from_again_replaces_it() -> None:
    resp = reply(Body="b")
    resp["From"] = "other@localhost"
    assert back(resp).get_all("from") == ["other@localhost"]
    msg = back(resp)
    msg["From"] = "third@localhost"
    assert msg.get_all("from") == ["third@localhost"] and msg.base["From"] == "third@localhost"


@pytest.fixture
def address_rule() -> Iterator[None]:
    saved = encoding.VALUE_IS_EMAIL_ADDRESS
    yield
    encoding.VALUE_IS_EMAIL_ADDRESS = saved


def test_value_is_email_address_decides_what_is_written_as_text(address_rule: None) -> None:
    assert encoding.VALUE_IS_EMAIL_ADDRESS("a@b.example") and not encoding.VALUE_IS_EMAIL_ADDRESS("nobody")
    obfuscated = "Zoë <zed-AT-example.com@obfuscated.example>"
    resp = reply(Body="b")
    resp["Cc"] = obfuscated
    assert "zed-AT-example.com@obfuscated.example" in resp.recipients()  # by default: an address
    # An application that writes obfuscated senders says they are not addresses: text, never a recipient.
    encoding.VALUE_IS_EMAIL_ADDRESS = lambda value: "@" in value and "-AT-" not in value
    resp = reply(Body="b")
    resp["Cc"] = obfuscated
    assert resp.recipients() == [LIST]
    assert str(resp).isascii() and back(resp)["Cc"] == obfuscated
    base = MailBase([("Cc", obfuscated), ("To", LIST)])
    base.body = "b"
    assert MailRequest(None, None, None, encoding.to_string(base))["Cc"] == obfuscated


# ------------------------------------------------------------------ header names, parts


def test_header_names_come_back_as_1x_spelled_them() -> None:
    msg = MailRequest(None, "a@example.com", "b@example.com",
                      b"message-id: <1@x>\r\nCONTENT-TYPE: text/plain\r\nx-spam-status: no\r\n\r\nhi")
    assert msg.keys()[:3] == ["Message-Id", "Content-Type", "X-Spam-Status"]
    assert list(msg)[:3] == msg.keys()[:3]
    resp = reply(Body="b")
    resp["message-id"] = "<2@x>"
    assert "Message-Id" in resp.keys() and list(resp) == resp.keys()


def test_single_part_message_has_no_parts() -> None:
    msg = back(reply(Body="The body."))
    assert msg.all_parts() == [] and list(msg.walk()) == [] and msg.base.parts == []


def test_multipart_parts_and_walk_as_1x() -> None:
    resp = reply(Body="text", Html="<p>html</p>")
    resp.attach(filename="f.txt", data="file", content_type="text/plain")
    msg = back(resp)
    top = msg.all_parts()
    assert [p.get_content_type() for p in top] == ["multipart/alternative", "text/plain"]
    walked = [p.get_content_type() for p in msg.walk()]
    assert walked == ["multipart/alternative", "text/plain", "text/html", "text/plain"]  # no entry for the top
    assert len(walked) == len(list(msg.base.walk()))


# ------------------------------------------------------------------ mailing-list headers


def test_mailing_list_headers_read_back_as_written() -> None:
    resp = reply(Body="Mailing list reply.")
    headers = {
        "Sender": LIST, "Reply-To": LIST, "List-Id": f"<{LIST}>", "List-Post": f"<mailto:{LIST}>",
        "List-Unsubscribe": "<mailto:test.users-unsubscribe@localhost>", "Return-Path": LIST,
        "In-Reply-To": "<Message-Id-1231123@localhost>", "References": "<Message-Id-838845854@localhost>",
        "Precedence": "list",
    }
    for name, value in headers.items():
        resp[name] = value
    msg = back(resp)
    for name in headers:
        assert resp[name] == msg[name], name
    assert msg["List-Id"] == "<test.users@localhost>" and msg["List-Post"] == "<mailto:test.users@localhost>"
    assert msg["Return-Path"] == "<test.users@localhost>"  # written as the path RFC 5322 wants
    del resp["Precedence"]
    assert "Precedence" not in back(resp)
