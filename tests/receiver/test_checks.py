"""lamson.receiver.checks: the path grammar, served domains, the Received count, line endings."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from lamson.receiver.checks import (
    BadPath,
    Path,
    ascii_lower,
    count_received,
    header_block,
    is_postmaster,
    normalise_line_endings,
    parse_path,
    served_domains,
)


@pytest.mark.parametrize(("arg", "expected"), [
    ("<user@example.org>", Path("user@example.org", "")),
    ("<user@example.org> SIZE=100 BODY=8BITMIME", Path("user@example.org", "SIZE=100 BODY=8BITMIME")),
    ("  <user@example.org>  ", Path("user@example.org", "")),
    ("user@example.org", Path("user@example.org", "")),
    ("user@example.org SIZE=10", Path("user@example.org", "SIZE=10")),
    ("<>", Path("<>", "")),
    ("<> SIZE=10", Path("<>", "SIZE=10")),
    ("<postmaster>", Path("postmaster", "")),
    ("<PostMaster>", Path("PostMaster", "")),
    ("<first.last+tag@sub.example.org>", Path("first.last+tag@sub.example.org", "")),
    ('<"john smith"@example.org>', Path('"john smith"@example.org', "")),
    ("<user@[127.0.0.1]>", Path("user@[127.0.0.1]", "")),
    ("<user@[IPv6:::1]>", Path("user@[IPv6:::1]", "")),
    ("<jürgen@bücher.example>", Path("jürgen@bücher.example", "")),
    ("<a-b@x-y.example>", Path("a-b@x-y.example", "")),
    ("<δοκιμή@παράδειγμα.δοκιμή>", Path("δοκιμή@παράδειγμα.δοκιμή", "")),
    ("<用户@例子.广告>", Path("用户@例子.广告", "")),
    ("<\u05e9\u05dc\u05d5\u05dd@example.org>", Path("\u05e9\u05dc\u05d5\u05dd@example.org", "")),  # Hebrew: RTL, no control
    ("<" + "l" * 64 + "@example.org>", Path("l" * 64 + "@example.org", "")),
])
def test_valid_paths(arg: str, expected: Path) -> None:
    assert parse_path(arg) == expected


@pytest.mark.parametrize(("arg", "why"), [
    ("a b c", "malformed"),
    ("<a b c>", "malformed"),
    ("<user@example.org", "malformed"),
    ("<<user@example.org>>", "malformed"),
    ("<user\x00@example.org>", "malformed"),
    ("<user@exa\x00mple.org>", "malformed"),
    ("<@a,@b:user@c.org>", "source route"),
    ("<@a:user@c.org>", "source route"),
    ("<user%other.org@example.org>", "% and !"),
    ("<host!user@example.org>", "% and !"),
    ('<"user@evil.org"@example.org>', "contains @"),
    ('<"user\\@evil.org"@example.org>', "contains @"),
    ('<"a%b"@example.org>', "% and !"),
    ("<user@>", "malformed"),
    ("<@example.org>", "source route"),
    ("<user>", "malformed"),
    ("<user@example..org>", "malformed"),
    ("<user@-example.org>", "malformed"),
    ("<user@example.org.>", "malformed"),
    ("<.user@example.org>", "malformed"),
    ("<us..er@example.org>", "malformed"),
    ("<user@[999.1.1.1]>", "literal"),
    ("<user@[general:stuff]>", "literal"),
    ("<user@exa\udcffmple.org>", "malformed"),  # an undecodable byte (surrogateescape)
    ("<" + "l" * 65 + "@example.org>", "64 octets"),
    ("<u@" + ".".join(["d" * 60] * 5) + ">", "256 octets"),
    ("<u@" + "d" * 64 + ".org>", "63 octets"),
    ("<" + "l" * 64 + "@" + ".".join(["d" * 62] * 3) + ".org>", "256 octets"),
    ("<\r\n@example.org>", "malformed"),
    # Issue 11: bidirectional and invisible format characters, C1 controls, non-ASCII spaces.
    ("<moc.\u202eevil@example.org>", "bidirectional"),  # U+202E RIGHT-TO-LEFT OVERRIDE
    ("<user@exa\u202dmple.org>", "bidirectional"),  # U+202D LEFT-TO-RIGHT OVERRIDE, in the domain
    ("<us\u2066er@example.org>", "bidirectional"),  # U+2066 LEFT-TO-RIGHT ISOLATE
    ("<us\u200fer@example.org>", "bidirectional"),  # U+200F RIGHT-TO-LEFT MARK
    ("<us\u061cer@example.org>", "bidirectional"),  # U+061C ARABIC LETTER MARK
    ("<pay\u200bpal@example.org>", "invisible"),  # U+200B ZERO WIDTH SPACE
    ("<user@pay\ufeffpal.example>", "invisible"),  # U+FEFF ZERO WIDTH NO-BREAK SPACE
    ("<us\x9ber@example.org>", "control"),  # C1 CSI
    ("<us\u00a0er@example.org>", "invisible"),  # NO-BREAK SPACE
    ("<us\u3000er@example.org>", "invisible"),  # IDEOGRAPHIC SPACE
    ("<us\u2028er@example.org>", "invisible"),  # LINE SEPARATOR
])
def test_refused_paths(arg: str, why: str) -> None:
    with pytest.raises(BadPath) as refused:
        parse_path(arg)
    assert why in str(refused.value)


def test_parsing_is_linear_on_hostile_input() -> None:
    started = time.perf_counter()
    for hostile in ("<" + "a." * 250 + ">", "<" + "a-" * 250 + "@x>", "<a@" + "a-" * 2000 + ">", '<"' + "\\" * 500 + ">"):
        with pytest.raises(BadPath):
            parse_path(hostile)
    assert time.perf_counter() - started < 1.0


def test_postmaster() -> None:
    assert is_postmaster("postmaster") and is_postmaster("POSTMASTER")
    assert not is_postmaster("postmaster@example.org")


def settings(**values: object) -> SimpleNamespace:
    return SimpleNamespace(**values)


def test_served_domains_from_the_setting() -> None:
    served = served_domains(settings(served_domains=["example.org", r"(.+\.)?lists\.example\.net"],
                                     router_defaults={"host": r"test\.com"}))
    assert served.serves("example.org") and served.serves("EXAMPLE.ORG")
    assert served.serves("lists.example.net") and served.serves("a.lists.example.net")
    assert not served.serves("sub.example.org")  # a plain domain is exact
    assert not served.serves("exampleXorg")  # ...and its dots are not regex wildcards
    assert not served.serves("test.com")  # the setting wins over router_defaults
    assert not served.serves("lists.example.net.evil.org")  # regexes match the whole domain


def test_served_domains_from_router_defaults() -> None:
    served = served_domains(settings(served_domains=None, router_defaults={"host": r"test\.com"}))
    assert served.serves("test.com") and served.serves("Test.COM")
    assert not served.serves("testXcom") and not served.serves("evil.org") and not served.serves("test.com.evil.org")
    assert served_domains(settings(served_domains="example.org")).serves("example.org")


def test_nothing_served_when_neither_is_set() -> None:
    served = served_domains(settings(router_defaults={}))
    assert not served and not served.serves("localhost") and not served.serves("test.com")


def test_served_domains_fold_case_in_ascii_only() -> None:
    """Unicode case folding would let look-alikes through: dotless ı, long ſ, Kelvin sign K."""
    served = served_domains(settings(served_domains=["kde.org", r"(.+\.)?lists\.example\.com", r"test\.com"]))
    assert served.serves("LISTS.Example.COM") and served.serves("a.lists.example.com") and served.serves("KDE.org")
    assert not served.serves("l\u0131sts.example.com")  # ı U+0131 LATIN SMALL LETTER DOTLESS I
    assert not served.serves("L\u0130STS.example.com")  # İ U+0130 LATIN CAPITAL LETTER I WITH DOT ABOVE
    assert not served.serves("te\u017ft.com")  # ſ U+017F LATIN SMALL LETTER LONG S
    assert not served.serves("\u212ade.org")  # K U+212A KELVIN SIGN: str.lower() makes it "k"
    assert ascii_lower("ÄB\u0130\u212aC") == "Äb\u0130\u212ac"


def test_bad_served_domains_are_refused() -> None:
    with pytest.raises(ValueError, match="regular expression"):
        served_domains(settings(served_domains=["(unclosed"]))
    with pytest.raises(ValueError, match="non-empty"):
        served_domains(settings(served_domains=["", "x.org"]))


def test_received_headers_are_counted_in_the_header_block_only() -> None:
    hops = b"".join(b"Received: from h%d by h%d; date\r\n\tcontinued\r\n" % (i, i) for i in range(5))
    body = b"Received: not a header, body text\r\nreceived: neither\r\n"
    message = hops + b"RECEIVED : odd case\r\nX-Received: not counted\r\nSubject: s\r\n\r\n" + body
    assert count_received(message) == 6
    assert header_block(message).endswith(b"Subject: s")
    assert count_received(b"\r\nReceived: in the body\r\n") == 0
    assert count_received(b"Received: a\r\nReceived: b") == 2  # no body at all
    assert count_received(b"Received: a\nReceived: b\n\nReceived: c\n") == 2


def test_line_endings() -> None:
    clean = b"a\r\nb\r\n"
    assert normalise_line_endings(clean) is clean
    assert normalise_line_endings(b"a\nb\rc\r\n\n.\n") == b"a\r\nb\r\nc\r\n\r\n.\r\n"
    assert normalise_line_endings(b"a\r\r\nb") == b"a\r\n\r\nb"
