"""Address headers with deeply nested comments (issue 21, finding 4): read without RecursionError, in
linear time, by every path that parses an address (MailRequest.addresses, the envelope, replies built from
a request's From, the RFC 3834 screening, message.identity)."""

from __future__ import annotations

import time

import pytest

from lamson.bounce import auto_reply_refusal
from lamson.mail import MAX_COMMENT_DEPTH, MailRequest, MailResponse, address_pairs, comment_depth


def nested(depth: int) -> str:
    return "(" * depth + "c" + ")" * depth


@pytest.mark.parametrize("depth", [MAX_COMMENT_DEPTH + 1, 500, 2000, 50_000])
def test_deeply_nested_comments_in_a_from_read_as_white_space(depth: int) -> None:
    started = time.monotonic()
    for value in (f"{nested(depth)} alice@example.org", f"Alice {nested(depth)} <alice@example.org>",
                  f"=?utf-8?q?Al=C3=AFce?= {nested(depth)} <alice@example.org>"):
        request = MailRequest("192.0.2.1", None, "bot@test.com",
                              f"From: {value}\r\nTo: bot@test.com\r\n\r\nbody\r\n".encode())
        (author,) = request.addresses("from")
        assert author[1] == "alice@example.org" if "=?" not in value else author[1].endswith("@example.org"), author
        assert request.From == author[1].lower()  # the envelope sender taken from the header
        assert request.identity.address is None and "nested" in request.identity.reason
        assert auto_reply_refusal(request) is None  # a person's mail: read to the end, nothing refuses it
        reply = MailResponse(To=request["from"], From="bot@test.com", Subject="re", Body="hi")
        assert b"alice@example.org" in reply.as_bytes()
    assert time.monotonic() - started < 5


def test_shallow_comments_are_parsed_as_before() -> None:
    value = "Alice (the (real) one) <alice@example.org>"
    assert comment_depth(value) == 2
    assert address_pairs("from", value) == [("Alice", "alice@example.org")]


def test_comment_depth_respects_quotes_and_quoted_pairs() -> None:
    assert comment_depth('"((((" a@b.c') == 0
    assert comment_depth("(a\\(b) x") == 1
    assert comment_depth("((a\\)b)) x") == 2
    assert comment_depth("(((unclosed") == 3
    assert comment_depth("") == 0


def test_an_envelope_address_with_nested_comments_does_not_raise() -> None:
    request = MailRequest("192.0.2.1", f"{nested(3000)} <alice@example.org>", "bot@test.com", b"\r\nbody\r\n")
    assert request.From == "alice@example.org"
