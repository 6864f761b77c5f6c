"""Replies to unusual envelope senders: quoted local parts, non-ASCII local parts (issue 11, items 7 and 10)."""

from __future__ import annotations

import re

import pytest

from lamson import view
from lamson.mail import MailRequest, MailResponse, unquote_local
from lamson.relay import envelope_of

QUOTED = ['"a b"@client.test', '"(c)x"@client.test', '"a\\"b"@client.test', '"a@b"@client.test']


def to_line(raw: bytes) -> bytes:
    (line,) = [x for x in raw.split(b"\r\n") if x.lower().startswith(b"to:")]
    return line


def test_unquote_local() -> None:
    assert unquote_local('"a b"') == "a b"
    assert unquote_local('"a\\"b"') == 'a"b'
    assert unquote_local('"a\\\\b"') == "a\\b"
    assert unquote_local("plain") == "plain"
    assert unquote_local('"') == '"'


@pytest.mark.parametrize("sender", QUOTED)
def test_a_reply_to_a_quoted_local_part_is_addressed_to_it_as_written(sender: str) -> None:
    request = MailRequest("peer", sender, "bot@test.com", b"From: x\r\nSubject: hi\r\n\r\nbody\r\n")
    assert request.From == sender
    for to in (request.From, ("Someone", request.From), [request.From]):
        reply = MailResponse(To=to, From="bot@test.com", Subject="Re: hi", Body="ok")
        raw = reply.as_bytes()
        assert sender.encode() in to_line(raw)
        assert b'\\"' not in to_line(raw).replace(b'a\\"b', b"")  # never quoted twice
        assert reply.recipients() == [sender]
        assert envelope_of(reply) == ("bot@test.com", [sender])
        assert envelope_of(raw) == ("bot@test.com", [sender])
        # The reply, read back, names the sender exactly.
        assert MailRequest(None, None, None, raw).addresses("to")[0][1] == sender


@pytest.mark.parametrize("sender", QUOTED)
def test_view_respond_to_the_envelope_sender(sender: str) -> None:
    import jinja2

    view.LOADER = jinja2.Environment(loader=jinja2.DictLoader({"r.txt": "hi"}))
    try:
        reply = view.respond({"sender": sender}, Body="r.txt", From="bot@test.com", To="{{ sender }}",
                             Subject="Re")
    finally:
        view.LOADER = None
    assert reply.recipients() == [sender]
    assert to_line(reply.as_bytes()) == b"To: " + sender.encode()


def test_a_non_ascii_local_part_is_never_an_encoded_word() -> None:
    request = MailRequest("peer", "josé@client.test", "bot@test.com", b"From: x\r\nSubject: hi\r\n\r\nbody\r\n")
    reply = MailResponse(To=("Zoë", request.From), From="bot@test.com", Subject="Ré", Body="déjà")
    raw = reply.as_bytes()
    assert b"=?" not in to_line(raw)  # RFC 2047 5: never inside an addr-spec
    assert to_line(raw) == "To: Zoë <josé@client.test>".encode()  # RFC 6532: UTF-8 header
    assert reply.recipients() == ["josé@client.test"]
    assert envelope_of(reply) == ("bot@test.com", ["josé@client.test"])
    # The body stays 7bit; the message reads back exactly.
    head, _, body = raw.partition(b"\r\n\r\n")
    assert body.isascii() and re.search(rb"Content-Transfer-Encoding: (quoted-printable|base64)", head)
    back = MailRequest(None, None, None, raw)
    assert back.addresses("to") == [("Zoë", "josé@client.test")]
    assert back["subject"] == "Ré" and back.body() == "déjà"


def test_ascii_addresses_keep_the_message_ascii() -> None:
    reply = MailResponse(To=("Zoë", "jose@bücher.example"), From="bot@test.com", Subject="Ré", Body="x")
    raw = reply.as_bytes()
    assert raw.isascii()
    assert re.search(rb"^To: =\?utf-8\?q\?Zo=C3=AB\?= <jose@xn--bcher-kva\.example>\r$", raw, re.M)
