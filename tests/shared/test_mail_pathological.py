"""Pathological mail: each case parses or is refused cleanly, within a (generous) time bound."""

from __future__ import annotations

import time

import pytest

from lamson.encoding import MAX_DEPTH, MAX_ENCODED_WORDS, MAX_HEADER_BYTES, MAX_PARTS
from lamson.mail import MailRequest, screen

BOUND = 10.0  # seconds; generous on purpose (a slow CI box), the real cost is milliseconds


def nested(depth: int, kind: bytes = b"multipart/mixed") -> bytes:
    head = b"From: a@example.com\r\nSubject: nest\r\n"
    body = b""
    for i in range(depth):
        if kind.startswith(b"multipart"):
            body += b'Content-Type: %s; boundary="b%d"\r\n\r\n--b%d\r\n' % (kind, i, i)
        else:
            body += b"Content-Type: message/rfc822\r\n\r\nSubject: level %d\r\n" % i
    body += b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    if kind.startswith(b"multipart"):
        body += b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + body


CORPUS = {
    "nesting bomb 5000 multipart": (nested(5000), "MIME"),  # caught by depth or delimiter count
    "nesting bomb 2000 message/rfc822": (nested(2000, b"message/rfc822"), "MIME nesting"),
    "nesting just over the limit": (nested(MAX_DEPTH + 5), "MIME nesting"),
    "part bomb": (
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
        + b"--x\r\nContent-Type: text/plain\r\n\r\npart\r\n" * 50000
        + b"--x--\r\n",
        "MIME delimiter",
    ),
    "huge header block": (b"X-Pad: " + b"a" * (MAX_HEADER_BYTES + 10) + b"\r\n\r\nbody", "header block"),
    "huge header block of many headers": (b"X-H: v\r\n" * 60000 + b"\r\nbody", "header block"),
    "8000 encoded words": (
        b"Subject: " + b" ".join([b"=?utf-8?q?a?="] * 8000) + b"\r\n\r\nbody",
        "encoded words",
    ),
    "8000 encoded words in an address": (
        b"From: " + b" ".join([b"=?utf-8?b?w6k=?="] * 8000) + b" <a@example.com>\r\n\r\nbody",
        "encoded words",
    ),
}

PARSED = {
    "NUL bytes": b"From: a@example.com\r\nSubject: nul\x00here\r\n\r\nbody\x00with\x00nuls\r\n",
    "bare LF": b"From: a@example.com\nSubject: lf\n\nbody\nline\n",
    "bare CR": b"From: a@example.com\rSubject: cr\r\rbody\rline\r",
    "no headers at all": b"just some text\r\nwithout any headers\r\n",
    "empty": b"",
    "only a blank line": b"\r\n",
    "binary junk": bytes(range(256)) * 40,
    "header without colon": b"From a@example.com\r\nthis is not a header\r\n\r\nbody",
    "nesting within the limit": nested(MAX_DEPTH - 2),
    "unterminated multipart": b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi",
    "broken base64": b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%%====",
    "many small parts within the limit": b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
    + b"--x\r\nContent-Type: text/plain\r\n\r\npart\r\n" * (MAX_PARTS // 2)
    + b"--x--\r\n",
    "long single line body": b"Subject: long\r\n\r\n" + b"x" * 2_000_000,
    "encoded words just under the limit": b"Subject: "
    + b" ".join([b"=?utf-8?q?a?="] * (MAX_ENCODED_WORDS - 1))
    + b"\r\n\r\nbody",
}


def touch(msg: MailRequest) -> None:
    for key in msg.keys():
        msg[key]
    msg.body()
    msg.attachments()
    msg.all_parts()
    list(msg.walk())
    list(msg.base.walk())  # Lamson 1.x's view of the same message
    msg.is_bounce()
    msg.addresses("from")


@pytest.mark.parametrize("name", list(CORPUS))
def test_refused_with_a_clear_reason(name: str) -> None:
    data, reason = CORPUS[name]
    started = time.monotonic()
    refusal = screen(data)
    assert refusal is not None and reason in refusal
    assert "\n" not in refusal
    msg = MailRequest("peer", "a@example.com", "b@example.com", data)
    touch(msg)  # a refused message is still safe to look at
    assert msg.refused is not None and reason in msg.refused
    assert msg.Data == data
    assert time.monotonic() - started < BOUND


@pytest.mark.parametrize("name", list(PARSED))
def test_parsed_without_error(name: str) -> None:
    data = PARSED[name]
    started = time.monotonic()
    assert screen(data) is None
    msg = MailRequest("peer", "a@example.com", "b@example.com", data)
    touch(msg)
    assert msg.refused is None
    assert time.monotonic() - started < BOUND


def test_nul_and_bare_line_ends_read_sensibly() -> None:
    assert MailRequest(None, None, None, PARSED["bare LF"])["subject"] == "lf"
    assert MailRequest(None, None, None, PARSED["bare LF"]).body() == "body\nline\n"
    assert MailRequest(None, None, None, PARSED["no headers at all"]).keys() == []
    assert "just some text" in MailRequest(None, None, None, PARSED["no headers at all"]).body()


def test_refused_flood_still_shows_its_subject_raw_or_decoded() -> None:
    msg = MailRequest(None, None, None, CORPUS["8000 encoded words"][0])
    assert msg["subject"] == "a" * 8000


def test_screen_is_cheap_for_normal_mail() -> None:
    message = (
        b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: =?utf-8?q?hello?=\r\n"
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
        + b"--b\r\nContent-Type: text/plain\r\n\r\n"
        + b"Some text of a normal message.\r\n" * 30
        + b"--b--\r\n"
    )
    assert screen(message) is None
    started = time.monotonic()
    for _ in range(1000):
        screen(message)
    # A sanity bound only (measured: a few microseconds a call, see docs/mail.md).
    assert time.monotonic() - started < BOUND
