"""The mail model's fast paths give exactly what the stdlib's full machinery gives.

lamson.mail parses with a policy that returns stored header text (decoding it
itself), reads plain mailboxes with a regular expression, and writes plain
replies directly (see lamson.mail: PARSE_POLICY, _simple_mailbox,
MailResponse._plain_bytes). Each is checked here against the stdlib on random
input: a fast path may decline (None) but never differ.
"""

from __future__ import annotations

import email.utils
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamson import mail
from lamson.mail import MailRequest, MailResponse

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
some_text = ascii_text | st.text(max_size=30)
atoms = st.text(st.sampled_from("abcXYZ019!#$%&'*+/=?^_`{|}~-"), min_size=1, max_size=8)
locals_ = st.lists(atoms, min_size=1, max_size=3).map(".".join) | ascii_text.filter(lambda t: "@" not in t)
labels = st.text(st.sampled_from("abcz09-"), min_size=1, max_size=10)
domains = st.lists(labels, min_size=1, max_size=3).map(".".join)
displays = st.lists(atoms, max_size=3).map(" ".join) | ascii_text | st.text(max_size=15)
addresses = st.tuples(displays, locals_, domains)
header_names = st.sampled_from(["To", "From", "Cc", "Reply-To", "Subject", "X-Thing", "Date", "Message-ID",
                                "In-Reply-To", "Return-Path", "Errors-To", "Delivered-To", "Content-Type"])


def stdlib_bytes(response: MailResponse) -> bytes:
    message = response.to_message()
    return message.as_bytes(policy=message.policy)


@SETTINGS
@given(st.lists(st.tuples(header_names, st.lists(addresses, min_size=1, max_size=3) | some_text), max_size=6),
       some_text | st.text(st.characters(min_codepoint=0x0A, max_codepoint=0x7E), max_size=400) | st.none())
def test_a_plain_reply_renders_as_the_stdlib_renders_it(headers: list, body: str | None) -> None:
    response = MailResponse(Body=body)
    for name, value in headers:
        try:
            if isinstance(value, list):
                response[name] = [(display, f"{local}@{domain}") for display, local, domain in value]
            else:
                response[name] = value
        except Exception:  # noqa: BLE001 - refused values (line breaks, ...) are another test's business
            continue
    fast = response._plain_bytes()
    if fast is not None:
        assert fast == stdlib_bytes(response)


def test_typical_replies_take_the_fast_path() -> None:
    """The fast path is not dead code: what handlers usually send goes through it."""
    replies = [
        MailResponse(To="Joe Smith <joe@example.com>", From="noreply@example.com", Subject="Re: hello",
                     Body="Thanks for your message.\nLine two.\n"),
        MailResponse(To='"Smith, Joe" <a@x.test>', From="John P. Looney <b@y.test>", Subject="Re:  spaced",
                     Body="x"),
        MailResponse(To=["a@x.test", ("Bee Cee", "b@y.test")], From=("Lists", "list@z.test"),
                     Subject="Welcome to the list", Body=""),
    ]
    replies[-1]["Reply-To"] = "list@z.test"
    replies[-1]["X-Loop"] = "list@z.test"
    for reply in replies:
        fast = reply._plain_bytes()
        assert fast is not None
        assert fast == stdlib_bytes(reply)
        assert bytes(reply) == fast


def test_replies_that_need_encoding_take_the_stdlib_path() -> None:
    for reply in (MailResponse(To="a@x.test", From="b@y.test", Subject="Grüße", Body="x"),
                  MailResponse(To="a@x.test", From="b@y.test", Subject="s", Html="<p>x</p>")):
        assert reply._plain_bytes() is None
        assert bytes(reply) == stdlib_bytes(reply)


def test_bodies_that_need_a_transfer_encoding_take_the_fast_path() -> None:
    """Long lines and non-ASCII text are quoted-printable or base64, chosen and written as the stdlib does."""
    cases = {"ünïcode": b"base64", "Grüße aus München, und vielen Dank für die Nachricht.\n": b"quoted-printable",
             "y" * 79: b"quoted-printable", "y" * 79 + "\n": b"quoted-printable",
             "Привет, мир\n" * 3: b"base64", "Привет" * 30: b"base64",
             "\n".join(f"line {n} " + "z" * 90 for n in range(14)): b"quoted-printable",
             "\n".join("ü" * n for n in range(14)) + "\n": b"base64"}
    for body, cte in cases.items():
        reply = MailResponse(To="a@x.test", From="b@y.test", Subject="s", Body=body)
        fast = reply._plain_bytes()
        assert fast is not None, body
        assert b"Content-Transfer-Encoding: " + cte + b"\r\n" in fast
        assert fast == stdlib_bytes(reply), body
        assert MailRequest(None, None, None, fast).body() == body.replace("\r\n", "\n")


@SETTINGS
@given(st.text(max_size=900)
       | st.lists(st.text(max_size=120) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                                  min_size=70, max_size=200), max_size=25).map("\n".join)
       | st.lists(st.sampled_from(["word ", "=", " ", "\t", "\r\n", "\n", "\r", "é", "€", "😀", ".", "\x85",
                                   "\x0c", "From "]), max_size=300).map("".join))
def test_an_encoded_body_renders_as_the_stdlib_renders_it(body: str) -> None:
    response = MailResponse(To="a@x.test", From="b@y.test", Subject="s", Body=body)
    fast = response._plain_bytes()
    assert fast is not None
    assert fast == stdlib_bytes(response)


@SETTINGS
@given(st.lists(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30),
                min_size=1, max_size=20).map(" ".join)
       | st.lists(st.sampled_from(["word", "x", "  ", " ", "longer-word", "=", "(c)", "a" * 40]), max_size=40)
       .map("".join).map(str.strip).filter(bool),
       st.sampled_from(["Subject", "X-Long-Header-Name", "In-Reply-To", "Comments"]))
def test_a_long_plain_header_folds_as_the_stdlib_folds_it(text: str, name: str) -> None:
    response = MailResponse(To="a@x.test", From="b@y.test", Body="x\n")
    response[name] = text
    fast = response._plain_bytes()
    if fast is not None:
        assert fast == stdlib_bytes(response)


def test_long_subjects_of_words_take_the_fast_path() -> None:
    reply = MailResponse(To="a@x.test", From="b@y.test", Body="x\n",
                         Subject="Re: " + " ".join(["lorem", "ipsum", "dolor", "sit", "amet"] * 8))
    fast = reply._plain_bytes()
    assert fast is not None and b"\r\n " in fast.split(b"\r\n\r\n")[0]  # folded
    assert fast == stdlib_bytes(reply)


@SETTINGS
@given(st.one_of(
    st.tuples(displays, locals_, domains).map(lambda t: f"{t[0]} <{t[1]}@{t[2]}>"),
    st.tuples(displays, locals_, domains).map(lambda t: f'"{t[0]}" <{t[1]}@{t[2]}>'),
    st.tuples(locals_, domains).map(lambda t: f"{t[0]}@{t[1]}"),
    st.lists(st.tuples(displays, locals_, domains).map(lambda t: f"{t[0]} <{t[1]}@{t[2]}>")
             | st.tuples(locals_, domains).map(lambda t: f"{t[0]}@{t[1]}"), min_size=2, max_size=4)
    .map(", ".join),
    ascii_text,
))
def test_a_plain_mailbox_parses_as_the_stdlib_parses_it(value: str) -> None:
    simple = mail._simple_mailbox(value)
    if simple is not None:
        header = policy.default.header_factory("to", value)
        assert [simple] == [(a.display_name, a.addr_spec) for a in header.addresses]
        # MailResponse reads header strings with it too, where it stands in for getaddresses().
        assert [simple] == email.utils.getaddresses([value])


@SETTINGS
@given(st.lists(st.tuples(displays, locals_, domains).map(lambda t: f"{t[0]} <{t[1]}@{t[2]}>")
                | st.tuples(locals_, domains).map(lambda t: f"{t[0]}@{t[1]}"), min_size=1, max_size=4)
       .map(", ".join), st.sampled_from(["to", "cc", "from", "return-path"]))
def test_address_headers_read_as_the_stdlib_reads_them(value: str, name: str) -> None:
    """Whichever path lamson.mail takes (fast or not), the pairs are the stdlib's."""
    try:
        header = policy.default.header_factory("to", value)
        expected = [(a.display_name, a.addr_spec) for a in header.addresses]
    except Exception:  # noqa: BLE001 - values the stdlib itself refuses are not compared
        return
    if "=?" in value or any("\ufffd" in d for d, _ in expected):
        return  # encoded words: decoded by lamson itself (RFC 2047 section 6.2), another test's business
    assert mail._addresses(name, value) == expected


def test_plain_mailboxes_take_the_fast_path() -> None:
    assert mail._simple_mailbox("Joe Smith <joe@example.com>") == ("Joe Smith", "joe@example.com")
    assert mail._simple_mailbox(' "Smith, Joe" <joe@example.com>') == ("Smith, Joe", "joe@example.com")
    assert mail._simple_mailbox("joe@example.com") == ("", "joe@example.com")
    for odd in ('"a b"@example.com', "Joe <joe@example.com> (home)", "a@b, c@d", "J. Smith <j@x.test>"):
        assert mail._simple_mailbox(odd) is None


def test_handlers_get_the_modern_email_api() -> None:
    """Parsing keeps raw text for speed; to_message() hands out the modern policy's objects."""
    request = MailRequest("peer", "a@x.test", "b@y.test", (
        b"From: Ann <a@x.test>\r\nTo: b@y.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        b"Content-Type: multipart/alternative; boundary=XX\r\n\r\n"
        b"--XX\r\nContent-Type: text/plain\r\n\r\nplain\r\n--XX\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--XX--\r\n"))
    assert request["Subject"] == "Grüße" and request.body() == "plain"
    message = request.to_message()
    assert isinstance(message, EmailMessage) and message.policy is policy.default
    assert message["From"].addresses[0].display_name == "Ann"
    assert str(message["Subject"]) == "Grüße"
    html = message.get_body(preferencelist=("html",))
    assert html is not None and html.get_content() == "<p>html</p>"
    assert all(part.policy is policy.default for part in message.walk())


def test_a_header_a_handler_sets_on_a_request_is_written_encoded() -> None:
    """Headers set through MailRequest go through the modern policy (RFC 2047), not compat32's bare text."""
    request = MailRequest("peer", "a@x.test", "b@y.test", b"From: a@x.test\r\nTo: b@y.test\r\nSubject: hi\r\n\r\nbody\r\n")
    assert request["Subject"] == "hi"  # parsed (and indexed) first, as a handler would
    request["X-Tag"] = "Grüße"
    data = bytes(request)
    assert b"X-Tag: =?utf-8?q?Gr=C3=BC=C3=9Fe?=" in data and data.isascii()
    assert request["X-Tag"] == "Grüße"
    assert MailRequest("peer", "a@x.test", "b@y.test", data)["X-Tag"] == "Grüße"
    del request["X-Tag"]
    assert request["X-Tag"] is None and b"X-Tag" not in bytes(request)


def test_headers_filled_from_a_utf8_envelope_survive_a_re_rendering() -> None:
    """From/To filled from the envelope are header objects, so an edited request still renders."""
    request = MailRequest("peer", "jürgen@x.test", "b@y.test", b"Subject: hi\r\n\r\nbody\r\n")
    assert request["From"] == "jürgen@x.test"
    request["X-Tag"] = "a"
    data = bytes(request)
    assert b"X-Tag: a" in data and b"From: " in data and b"To: b@y.test" in data


def test_header_presence_from_the_index_agrees_with_the_parsed_message() -> None:
    data = (b"From: a@example.org\r\nTo: b@test.com\r\nList-Id: <l.example.org>\r\nX-Empty:\r\n"
            b"Subject: hi\r\n\r\nhello\r\n")
    names = ["list-id", "LIST-ID", "X-Empty", "x-autoreply", "Subject", "subject ", "Received", ""]
    quick = MailRequest("127.0.0.1", "a@example.org", "b@test.com", data)
    answers = [name in quick for name in names]  # before the message is handed out: the header index
    parsed = MailRequest("127.0.0.1", "a@example.org", "b@test.com", data).to_message()
    assert answers == [name in parsed for name in names] == [True, True, True, False, True, False, False, False]


def test_the_date_of_a_reply_is_the_stdlibs_for_that_second() -> None:
    """Made once per second: what format_datetime(localtime()) gives at that second, checked canonical."""
    import email.utils
    import time

    from lamson import mail

    for _ in range(3):
        before = email.utils.format_datetime(email.utils.localtime())
        now = mail._date_now()
        after = email.utils.format_datetime(email.utils.localtime())
        if before == after:  # not across a second's boundary
            assert now == before
            break
        time.sleep(0.01)
    else:
        raise AssertionError("three second boundaries in a row")
    assert mail._canonical_date(now)
    assert not mail._canonical_date("Mon, 30 Nov 2026 13:17:19 GMT")  # the stdlib writes +0000
    assert not mail._canonical_date("not a date")


def _parsed_alike(data: bytes) -> None:
    """lamson.mail's single-part parse gives what the stdlib's full parse gives, or declines a container."""
    full = BytesParser(_class=EmailMessage, policy=policy.compat32).parsebytes(data)
    fast = mail._parse_single_part(data)
    if fast is None:  # a container, or a "From " line after the first (the parser's own rules for it)
        assert full.get_content_maintype() in ("multipart", "message") or b"\nFrom " in data or b"\rFrom " in data
        return
    assert list(fast.raw_items()) == list(full.raw_items())
    assert fast.get_payload() == full.get_payload()
    assert [type(defect) for defect in fast.defects] == [type(defect) for defect in full.defects]
    assert fast.get_unixfrom() == full.get_unixfrom()
    assert _rendered(fast) == _rendered(full)


def _rendered(message: EmailMessage) -> bytes | type[Exception]:
    try:
        return message.as_bytes()
    except Exception as exc:  # noqa: BLE001 - some parsed text the generator cannot write: both must fail alike
        return type(exc)


_line_ends = st.sampled_from(["\n", "\r\n", "\r", ""])
_header_lines = st.tuples(st.sampled_from(["Subject: ", "From: ", "X-A:", " ", "\t", "From x ", "Bad line ", "",
                                           "Content-Type: text/plain; charset=utf-8", "Content-Type: ",
                                           "Content-Type: multipart/mixed; boundary=b", "Content-Type: message/rfc822",
                                           ":", "Received:"]),
                          st.text(st.characters(min_codepoint=0x09, max_codepoint=0xFF), max_size=20),
                          _line_ends).map("".join)


@SETTINGS
@given(st.lists(_header_lines, max_size=8).map("".join), st.sampled_from(["", "\n", "\r\n", "\r", "x\n"]),
       st.text(max_size=200))
def test_a_single_part_parses_as_the_stdlib_parses_it(head: str, separator: str, body: str) -> None:
    _parsed_alike((head + separator + body).encode("utf-8", "surrogateescape"))


def test_single_part_parsing_corner_cases() -> None:
    for data in (b"", b"\n", b"\r\n", b"body only\nno headers\n", b"From x@y Mon\nSubject: a\n\nb", b"Subject: a",
                 b"Subject: a\r", b"Subject: a\r\n \r\nx", b"Subject: a\nbad line\nmore\n", b" cont\nSubject: x\n\nbody",
                 b"A: b\rC: d\r\rbody\r", b"X: \xff\xfe\n\n\xff body", b"Subject: a\n\n" + b"line\n" * 10000,
                 b"From x\r\nA: b\r\n\r\nc", b"From x", b"From x\n", b"From x\n b\n\nc", b"A:\n \n\nb",
                 b"A: b\n\tc\n d\n\nbody", b"A:   \t\n\tx\n\n", b"A:b:c\n:d\n\ne", b"A: b\n\n\n\nc\n"):
        _parsed_alike(data)
    assert mail._parse_single_part(b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n") is None
    assert mail._parse_single_part(b"Content-Type: Message/RFC822\n\nA: b\n\nc") is None
