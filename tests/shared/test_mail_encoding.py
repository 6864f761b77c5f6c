"""A table of awkward real-world headers and bodies: decoded, then re-encoded and decoded again."""

from __future__ import annotations

import base64

import pytest

from lamson.mail import MailRequest, MailResponse


def req(raw: bytes) -> MailRequest:
    return MailRequest("peer", "sender@example.com", "rcpt@example.com", raw)


HEADERS = [
    # (raw Subject bytes, decoded text)
    (b"=?utf-8?B?0J/RgNC40LLQtdGCLCDQvNC40YA=?=", "Привет, мир"),
    (b"=?UTF-8?Q?=CE=9A=CE=B1=CE=BB=CE=B7=CE=BC=CE=AD=CF=81=CE=B1?=", "Καλημέρα"),
    (b"=?iso-2022-jp?B?GyRCRnxLXDhsGyhC?=", "日本語"),
    (b"=?gb2312?B?1tDOxA==?=", "中文"),
    (b"=?euc-kr?B?x9Gxub7u?=", "한국어"),
    (b"=?koi8-r?B?8NLJ18XU?=", "Привет"),
    (b"=?windows-1252?Q?=80_and_=93quotes=94?=", "€ and “quotes”"),
    (b"=?iso-8859-8?B?+vnl4eQ=?=", "תשובה"),
    (b"=?utf-8?q?=F0=9F=98=80?= smile", "😀 smile"),
    # adjacent encoded words: the white space between them disappears (RFC 2047 6.2)
    (b"=?utf-8?q?caf?= =?utf-8?q?=C3=A9?=", "café"),
    (b"=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
    (b"=?iso-8859-1?q?caf=E9?= =?utf-8?b?w6k=?=", "caféé"),
    # encoded word next to plain text keeps the space
    (b"Re: =?utf-8?q?na=C3=AFve?= question", "Re: naïve question"),
    # folded plain text
    (b"a long subject\r\n\tcontinued here", "a long subject\tcontinued here"),
    # unknown charset: decoded with a fallback, not U+FFFD
    (b"=?x-unknown?q?caf=C3=A9?=", "café"),
    # mis-labelled: Latin-1 bytes labelled us-ascii
    (b"=?us-ascii?q?caf=E9?=", "café"),
    # raw 8-bit header, UTF-8 and Latin-1
    ("Grüße aus Köln".encode(), "Grüße aus Köln"),
    ("Grüße aus Köln".encode("latin-1"), "Grüße aus Köln"),
    # malformed encoded word stays as it is
    (b"=?utf-8?q?broken", "=?utf-8?q?broken"),
]


@pytest.mark.parametrize(("raw", "text"), HEADERS, ids=[t for _, t in HEADERS])
def test_header_decoding_and_reencoding(raw: bytes, text: str) -> None:
    msg = req(b"From: a@example.com\r\nSubject: " + raw + b"\r\n\r\nbody\r\n")
    assert msg["subject"] == text
    again = req(MailResponse(To="b@example.com", From="a@example.com", Subject=text, Body="x").as_bytes())
    assert again["subject"] == text


def test_display_names_in_many_scripts() -> None:
    raw = (
        b"From: =?utf-8?b?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan@example.ru>\r\n"
        b'To: =?iso-8859-1?q?J=FCrgen_M=FCller?= <j@example.de>, "Smith, John" <js@example.com>\r\n'
        b"Cc: =?utf-8?b?5bGx55Sw5aSq6YOO?= <yamada@example.jp>\r\n\r\nhi\r\n"
    )
    msg = req(raw)
    assert msg.addresses("from") == [("Иван Петров", "ivan@example.ru")]
    assert msg.addresses("to") == [("Jürgen Müller", "j@example.de"), ("Smith, John", "js@example.com")]
    assert msg.addresses("cc") == [("山田太郎", "yamada@example.jp")]
    resp = MailResponse(To=msg.addresses("to"), From=msg.addresses("from")[0], Subject="s", Body="b")
    resp["Cc"] = msg.addresses("cc")
    raw_out = resp.as_bytes()
    assert raw_out.isascii()
    back = req(raw_out)
    assert back.addresses("to") == msg.addresses("to") and back.addresses("cc") == msg.addresses("cc")


def test_non_ascii_domain_becomes_idna() -> None:
    raw = MailResponse(To="Ω <user@bücher.example>", From="a@example.com", Subject="s", Body="b").as_bytes()
    assert b"user@xn--bcher-kva.example" in raw
    assert req(raw).addresses("to") == [("Ω", "user@xn--bcher-kva.example")]


BODIES = [
    # (Content-Type, Content-Transfer-Encoding, raw body, decoded text)
    ("text/plain; charset=utf-8", "8bit", "Ünïcödé ✓\n".encode(), "Ünïcödé ✓\n"),
    ("text/plain; charset=iso-8859-1", "8bit", "café crème\n".encode("latin-1"), "café crème\n"),
    ("text/plain", "8bit", "naïve latin-1, no charset\n".encode("latin-1"), "naïve latin-1, no charset\n"),
    ("text/plain; charset=us-ascii", "8bit", "mislabelled é\n".encode("latin-1"), "mislabelled é\n"),
    (
        "text/plain; charset=iso-8859-1",
        "8bit",
        "utf-8 labelled latin-1: é\n".encode(),
        "utf-8 labelled latin-1: é\n",
    ),
    ("text/plain; charset=x-bogus", "8bit", "unknown charset é\n".encode(), "unknown charset é\n"),
    ("text/plain; charset=koi8-r", "8bit", "Привет\n".encode("koi8-r"), "Привет\n"),
    ("text/plain; charset=shift_jis", "8bit", "こんにちは\n".encode("shift_jis"), "こんにちは\n"),
    (
        "text/plain; charset=utf-8",
        "quoted-printable",
        b"soft=\r\nbreak and caf=C3=A9=\r\n\r\n",
        "softbreak and café\n",
    ),
    ("text/plain; charset=utf-8", "base64", base64.encodebytes("Ελληνικά\r\n".encode()), "Ελληνικά\n"),
    ("text/plain; charset=utf-8", "base64", b"!!!not base64", None),
]


@pytest.mark.parametrize(("ctype", "cte", "raw", "text"), BODIES, ids=[b[0] + " " + b[1] for b in BODIES])
def test_body_decoding_and_reencoding(ctype: str, cte: str, raw: bytes, text: str | None) -> None:
    head = f"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    msg = req(head.encode() + raw)
    body = msg.body()
    assert isinstance(body, str)
    if text is not None:
        assert body == text
    again = req(MailResponse(To="b@example.com", From="a@example.com", Subject="s", Body=body).as_bytes())
    assert again.body() == body  # as given, as Lamson 1.x sent it


def test_response_encodings_are_chosen_sensibly() -> None:
    def cte(body: str) -> str:
        msg = req(MailResponse(To="b@example.com", From="a@example.com", Subject="s", Body=body).as_bytes())
        return msg.to_message()["Content-Transfer-Encoding"]

    assert cte("plain ascii\n") == "7bit"
    assert cte("mostly ascii with one é\n") == "quoted-printable"
    assert cte("日本語のテキスト" * 20) == "base64"
    assert cte("x" * 2000) == "quoted-printable"  # a line over 78 octets is wrapped with soft breaks


def test_lines_stay_under_998_octets_and_crlf() -> None:
    resp = MailResponse(
        To="b@example.com", From="a@example.com", Subject="ü" * 400, Body=("é" * 3000 + "\n") * 3
    )
    resp.attach(filename="ñ" * 300 + ".txt", data="x" * 5000)
    raw = resp.as_bytes()
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert raw.isascii()
    back = req(raw)
    assert back["subject"] == "ü" * 400
    assert back.attachments()[0].filename == "ñ" * 300 + ".txt"


def test_attachment_names_and_binary_bytes_exact() -> None:
    blob = bytes(range(256)) * 64
    names = ["отчёт.pdf", "報告書.xlsx", "😀 smile.png", "Ελληνικά.txt", "مرحبا.doc", "naïve façade.bin"]
    resp = MailResponse(To="b@example.com", From="a@example.com", Subject="files", Body="see attached")
    for name in names:
        resp.attach(filename=name, content_type="application/octet-stream", data=blob)
    back = req(resp.as_bytes())
    assert [(a.filename, a.content_type, a.data) for a in back.attachments()] == [
        (name, "application/octet-stream", blob) for name in names
    ]


def test_rfc2047_and_rfc2231_attachment_names_from_other_clients() -> None:
    raw = (
        b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
        b"--XX\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
        b'--XX\r\nContent-Type: application/pdf; name="=?utf-8?b?0L7RgtGH0ZHRgi5wZGY=?="\r\n'
        b'Content-Disposition: attachment; filename="=?utf-8?b?0L7RgtGH0ZHRgi5wZGY=?="\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n"
        b"--XX\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename*0*=iso-8859-1''na%EFve; filename*1=.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nAwQF\r\n"
        b"--XX--\r\n"
    )
    msg = req(raw)
    assert msg.body() == "body"  # the CRLF before a boundary belongs to the boundary
    assert msg.attachments() == [
        ("отчёт.pdf", "application/pdf", b"\0\1\2"),
        ("naïve.bin", "application/octet-stream", b"\3\4\5"),
    ]


def test_html_only_and_alternative() -> None:
    html_only = req(
        MailResponse(To="b@example.com", From="a@example.com", Subject="s", Html="<p>hé</p>").as_bytes()
    )
    assert html_only.to_message().get_content_type() == "text/html"
    assert html_only.body() == "<p>hé</p>"
    both = req(
        MailResponse(
            To="b@example.com", From="a@example.com", Subject="s", Body="hé", Html="<p>hé</p>"
        ).as_bytes()
    )
    assert both.to_message().get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in both.all_parts()] == ["text/plain", "text/html"]
    assert both.body() == "hé"
