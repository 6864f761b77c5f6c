"""Property tests: any bytes parse, any Unicode round-trips through MailResponse → bytes → MailRequest."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamson.encoding import LINE_BREAKS, canonical_body, canonical_header, canonical_name
from lamson.mail import MailRequest, MailResponse, screen

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Any text a person might type: every plane, no surrogates (not encodable) and no controls.
human_text = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=120)
#: Display names: no line-break characters either (an address header refuses them), and no
#: Unicode spaces other than U+0020: the stdlib's folder can glue an encoded word ending in
#: one to the next atom (CPython email bug; see docs/mail.md "Limits").
names = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp", "Zs"), exclude_characters=LINE_BREAKS)
    | st.just(" "),
    max_size=40,
)
#: File names may hold any spaces.
filenames = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters=LINE_BREAKS), max_size=40
)
#: Bodies: anything but lone surrogates, controls included.
bodies = st.text(st.characters(exclude_categories=("Cs",)), max_size=500)

MESSAGE_LIKE = st.lists(
    st.sampled_from(
        [
            b"From: a@b\r\n", b"Subject: =?utf-8?q?x?=\r\n", b"Content-Type: multipart/mixed; boundary=b\r\n",
            b"\r\n", b"\n", b"--b\r\n", b"--b--\r\n", b"Content-Transfer-Encoding: base64\r\n", b"=?", b"?=",
            b"Content-Type: message/rfc822\r\n", b"\x00", b"\xff\xfe", b"\r", b": ", b" ", b"=?x?b?", b"==",
        ]
    ),
    max_size=60,
).map(b"".join)  # fmt: skip


def exercise(msg: MailRequest) -> None:
    """Touch everything a handler might touch; none of it may raise."""
    for key in msg.keys():
        assert isinstance(msg[key], str)
    msg.items()
    msg.addresses("from")
    assert isinstance(msg.body(), str)
    msg.all_parts()
    list(msg.base.walk())  # Lamson 1.x's view of the same message
    msg.attachments()
    msg.is_bounce()
    msg.to_message()
    msg.as_bytes()
    assert msg.Data == msg.original
    assert all(isinstance(a, str) and a == a.lower() for a in msg.route_to)
    assert msg.route_from is None or msg.route_from == msg.route_from.lower()
    for name in ("return-path", "delivered-to", "errors-to"):
        msg.addresses(name)


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_without_exception(data: bytes) -> None:
    screen(data)
    exercise(MailRequest("peer", "a@b", "c@d", data))


@SETTINGS
@given(MESSAGE_LIKE)
def test_message_like_bytes_parse_without_exception(data: bytes) -> None:
    screen(data)
    exercise(MailRequest("peer", None, None, data))
    exercise(MailRequest("peer", None, None, b"To: a@b\r\nFrom: c@d\r\n" + data))  # header fallback


@SETTINGS
@given(subject=human_text, body=bodies, name=names, sender_name=names)
def test_unicode_round_trips_exactly(subject: str, body: str, name: str, sender_name: str) -> None:
    resp = MailResponse(
        To=(name, "rcpt@example.com"), From=(sender_name, "sender@example.com"), Subject=subject, Body=body
    )
    raw = resp.as_bytes()
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = MailRequest("peer", "sender@example.com", "rcpt@example.com", raw)
    assert msg["subject"] == canonical_header(subject)
    assert msg.body() == canonical_body(body)
    assert msg.addresses("to") == [(canonical_name(name), "rcpt@example.com")]
    assert msg.addresses("from") == [(canonical_name(sender_name), "sender@example.com")]


@SETTINGS
@given(filename=filenames.filter(lambda s: s.strip()), html=bodies)
def test_attachment_names_and_html_round_trip(filename: str, html: str) -> None:
    resp = MailResponse(To="rcpt@example.com", From="sender@example.com", Subject="s", Body="text", Html=html)
    resp.attach(filename=filename, content_type="application/octet-stream", data=filename.encode())
    msg = MailRequest(None, None, None, resp.as_bytes())
    [attachment] = msg.attachments()
    assert attachment.filename == canonical_header(filename)
    assert attachment.data == filename.encode()
    [html_part] = [p for p in msg.walk() if p.get_content_type() == "text/html"]  # inside the alternative
    from lamson.mail import part_text

    assert part_text(html_part) == canonical_body(html)
