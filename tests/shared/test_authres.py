"""lamson.authres against the test DNS server: SPF, DKIM, DMARC, timeouts, forged headers."""

from __future__ import annotations

import base64
import time
from types import SimpleNamespace
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lamson import authres
from lamson.mail import MailRequest
from tests.dnsserver import dns_server

PEER = "192.0.2.10:40001"


def make_key() -> tuple[bytes, str]:
    """A private key (PEM) and its DKIM TXT value."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def txt(value: str) -> str:
    """A zone TXT value in strings of at most 200 characters."""
    return " ".join(f'"{value[i:i + 200]}"' for i in range(0, len(value), 200))


PEM, DKIM_TXT = make_key()

ZONE = f'''
example.org.              300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
soft.example.net.         300 IN TXT "v=spf1 ip4:198.51.100.1 ~all"
nospf.example.com.        300 IN A   192.0.2.99
sel._domainkey.example.org. 300 IN TXT {txt(DKIM_TXT)}
_dmarc.example.org.       300 IN TXT "v=DMARC1; p=reject; adkim=r; aspf=r"
'''


def settings(server: Any, **more: Any) -> SimpleNamespace:
    return SimpleNamespace(dns_config=server.config, authserv_id="mx.test.com", **more)


def message(sender: str = "alice@example.org", extra: str = "", body: str = "Hello there.\r\n") -> bytes:
    return (f"From: Alice <{sender}>\r\nTo: bot@test.com\r\nSubject: hi\r\n"
            f"Message-ID: <1@example.org>\r\n{extra}\r\n{body}").encode()


def signed(data: bytes, domain: bytes = b"example.org") -> bytes:
    signature = dkim.sign(data, b"sel", domain, PEM, include_headers=[b"from", b"to", b"subject"])
    return signature.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + data


@pytest.mark.parametrize("sender, peer, expected", [
    ("alice@example.org", PEER, "pass"),
    ("alice@example.org", "203.0.113.5:25", "fail"),
    ("bob@soft.example.net", PEER, "softfail"),
    ("carol@nospf.example.com", PEER, "none"),
    ("dave@unknown.example.com", PEER, "none"),
    ("alice@example.org", "", "none"),  # no peer IP (read back from a queue): nothing to check
    ("alice@example.org", "127.0.0.1:40000", "none"),  # another MTA on this host handed it over
])
def test_spf(sender: str, peer: str, expected: str) -> None:
    with dns_server(ZONE) as server:
        auth = authres.check(message(sender), peer=peer, mail_from=sender, helo="client.example.org",
                             settings=settings(server))
    assert auth.spf == expected
    assert f"spf={expected}" in auth.header


def test_peer_forms() -> None:
    assert authres._peer_ip("192.0.2.1:25") == "192.0.2.1"
    assert authres._peer_ip(("2001:db8::1", 25)) == "2001:db8::1"
    assert authres._peer_ip("[2001:db8::1]:25") == "2001:db8::1"
    assert authres._peer_ip("2001:db8::1") == "2001:db8::1"
    assert authres._peer_ip("2001:db8::5:40001") == "2001:db8::5"  # the receiver's "IP:port" for IPv6
    assert authres._peer_ip("192.0.2.1") == "192.0.2.1"
    assert authres._peer_ip("") is None and authres._peer_ip("nonsense") is None


def test_dkim_pass_for_a_signed_message_and_fail_when_a_byte_changes() -> None:
    data = signed(message())
    with dns_server(ZONE) as server:
        auth = authres.check(data, peer="203.0.113.5:25", mail_from="alice@example.org", settings=settings(server))
        assert (auth.dkim, auth.dkim_domains) == ("pass", ["example.org"])
        assert auth.spf == "fail" and auth.dmarc == "pass"  # DKIM aligned with From: DMARC passes
        assert "dkim=pass header.d=example.org" in auth.header
        tampered = data.replace(b"Hello there.", b"Hello therE.")
        bad = authres.check(tampered, peer="203.0.113.5:25", mail_from="alice@example.org",
                            settings=settings(server))
        assert bad.dkim == "fail" and bad.dkim_domains == []
        assert bad.dmarc == "fail" and bad.dmarc_policy == "reject"


def test_dkim_none_without_a_signature_and_unknown_key_fails() -> None:
    with dns_server(ZONE) as server:
        auth = authres.check(message(), peer=PEER, mail_from="alice@example.org", settings=settings(server))
        assert auth.dkim == "none"
        server.zone = ZONE.replace("sel._domainkey", "other._domainkey")
        auth = authres.check(signed(message()), peer="", mail_from="alice@example.org",
                             settings=settings(server))
        assert auth.dkim == "fail"


def test_dmarc_pass_by_aligned_spf_and_fail_with_the_policy() -> None:
    with dns_server(ZONE) as server:
        ok = authres.check(message(), peer=PEER, mail_from="bounce@mail.example.org", settings=settings(server))
        # SPF for mail.example.org: no record, so none; nothing aligned passes
        assert ok.spf == "none" and ok.dmarc == "fail" and ok.dmarc_policy == "reject"
        ok = authres.check(message(), peer=PEER, mail_from="alice@example.org", settings=settings(server))
        assert (ok.spf, ok.dmarc, ok.dmarc_policy, ok.from_domain) == ("pass", "pass", "reject", "example.org")
        assert "dmarc=pass header.from=example.org policy.dmarc=reject" in ok.header
        # SPF passes for another domain than the From header's: not aligned
        other = authres.check(message(sender="alice@example.org"), peer=PEER, mail_from="x@soft.example.net",
                              settings=settings(server))
        assert other.dmarc == "fail"


def test_dmarc_subdomain_uses_the_organizational_record() -> None:
    with dns_server(ZONE + '_dmarc.example.net. 300 IN TXT "v=DMARC1; p=none; sp=quarantine"\n') as server:
        auth = authres.check(message(sender="bob@soft.example.net"), peer=PEER, mail_from="bob@soft.example.net",
                             settings=settings(server))
        assert (auth.spf, auth.dmarc, auth.dmarc_policy) == ("softfail", "fail", "quarantine")
        none = authres.check(message(sender="c@nospf.example.com"), peer=PEER, mail_from="c@nospf.example.com",
                             settings=settings(server))
        assert none.dmarc == "none" and none.dmarc_policy == ""


def test_a_dns_server_that_hangs_gives_temperror_quickly() -> None:
    with dns_server(ZONE) as server:
        server.hang = True
        conf = settings(server)
        conf.dns_config = {**server.config, "timeout": 0.3}
        started = time.monotonic()
        auth = authres.check(signed(message()), peer=PEER, mail_from="alice@example.org", settings=conf,
                             limit=1.0)
        first = time.monotonic() - started
        assert (auth.spf, auth.dkim, auth.dmarc) == ("temperror", "temperror", "temperror")
        assert first < 2.0
        # the servers are left alone a while: the next message does not wait at all
        started = time.monotonic()
        again = authres.check(message(), peer=PEER, mail_from="alice@example.org", settings=conf, limit=1.0)
        assert again.spf == "temperror" and again.dmarc == "temperror"
        assert time.monotonic() - started < 0.2


def test_forged_authentication_results_are_removed_others_kept() -> None:
    forged = ("Authentication-Results: MX.TEST.COM (forged);\r\n\tspf=pass smtp.mailfrom=alice@example.org\r\n"
              "Authentication-Results: upstream.example.net; spf=fail\r\n")
    data = message(extra=forged)
    with dns_server(ZONE) as server:
        auth = authres.check(data, peer="203.0.113.5:25", mail_from="alice@example.org", settings=settings(server))
    stamped = auth.stamp(data)
    assert b"(forged)" not in stamped and b"upstream.example.net; spf=fail" in stamped
    assert stamped.startswith(b"Authentication-Results: mx.test.com;")
    request = MailRequest(PEER, "alice@example.org", "bot@test.com", stamped)
    (ours, theirs) = request.get_all("Authentication-Results")
    assert ours.startswith("mx.test.com;") and "spf=fail" in ours and theirs.startswith("upstream")
    assert request.body() == "Hello there.\n"


def test_authserv_id_defaults() -> None:
    assert authres.authserv_id(SimpleNamespace(authserv_id=None, receiver_hostname="mx.example")) == "mx.example"
    assert authres.authserv_id(SimpleNamespace(authserv_id="a.b", receiver_hostname="mx.example")) == "a.b"


# -- issue 21, findings 4 and 8 ---------------------------------------------------------------------

NESTED = "(" * 2000 + "c" + ")" * 2000


@pytest.mark.parametrize("from_lines, problem", [
    (["mallory@evil.test", "Alice <alice@example.org>"], "2 From authors in 2 From fields"),
    (["alice@example.org", "mallory@evil.test"], "2 From authors in 2 From fields"),
    (["mallory@evil.test, Alice <alice@example.org>"], "2 From authors in one From field"),
    (["friends: mallory@evil.test, alice@example.org;"], "2 From authors in one From field"),
    (["alice@example.org", "alice@example.org"], "2 From authors"),
    ([f"{NESTED} alice@example.org"], "unreadable (comments nested 2000 deep)"),
    ([f"Mallory {NESTED} <alice@example.org>, m@evil.test"], "unreadable"),
])
def test_several_or_unreadable_from_authors_fail_closed_with_the_strictest_policy(
        from_lines: list[str], problem: str) -> None:
    """RFC 7489 §6.6.1: never none or pass; the p=reject of one named domain applies (and parks)."""
    head = "".join(f"From: {line}\r\n" for line in from_lines)
    data = f"{head}To: bot@test.com\r\nSubject: hi\r\n\r\nbody\r\n".encode()
    with dns_server(ZONE) as server:
        started = time.monotonic()
        auth = authres.check(signed(data), peer=PEER, mail_from="alice@example.org", settings=settings(server))
    assert time.monotonic() - started < 5
    assert (auth.dmarc, auth.dmarc_policy, auth.from_domain) == ("fail", "reject", "example.org"), auth
    assert problem in auth.reason
    assert "dmarc=fail" in auth.header


def test_a_from_without_exactly_one_author_and_no_record_is_a_permerror_never_none() -> None:
    with dns_server(ZONE) as server:
        for head in ("", "From: alice\r\n", "From: a@nodmarc.test, b@other.test\r\n", "From: undisclosed:;\r\n"):
            data = f"{head}To: bot@test.com\r\nSubject: hi\r\n\r\nbody\r\n".encode()
            auth = authres.check(data, peer=PEER, mail_from="alice@example.org", settings=settings(server))
            assert auth.dmarc == "permerror" and auth.dmarc_policy == "" and auth.reason, (head, auth)


def test_a_from_naming_many_domains_is_treated_as_p_reject() -> None:
    many = ", ".join(f"a@d{i}.test" for i in range(authres.MAX_FROM_DOMAINS + 1))
    with dns_server(ZONE) as server:
        auth = authres.check(f"From: {many}\r\n\r\nbody\r\n".encode(), peer=PEER, mail_from="a@d0.test",
                             settings=settings(server))
    assert (auth.dmarc, auth.dmarc_policy) == ("fail", "reject") and "treated as p=reject" in auth.reason


def test_every_from_field_is_seen_whatever_its_line_end_or_spacing() -> None:
    """A From after a bare CR (a line end to the email parser) or with white space before its colon counts."""
    assert authres.from_fields(b"Subject: x\rFrom: a@example.org\r\nFrom\t: b@evil.test\r\n\r\nFrom: body@x.y\r\n") \
        == [" a@example.org", " b@evil.test"]
    assert authres.from_fields(b"From: a@example.org,\r\n b@evil.test\r\n\r\n") == [" a@example.org,  b@evil.test"]


@pytest.mark.parametrize("value", [
    "((((c)))) mx.test.com; dmarc=pass",
    "(a\\)b) mx.test.com; dmarc=pass header.from=example.org",
    "(a\\)b (c\\(d)) mx.test.com; dmarc=pass",
    "MX.Test.COM; dmarc=pass",
    "mx.test.com.; dmarc=pass",
    "MX.TEST.COM.(x); dmarc=pass",
    '"mx.test.com"; dmarc=pass',
    " \t(comment)\tmx.test.com ; dmarc=pass",
    "mx.test.com 1; dmarc=pass",
    "mx.test.com; none",
    "mx.test.com",
    "(" * 2000 + ")" * 2000 + " mx.test.com; dmarc=pass",
    "(unclosed mx.test.com; dmarc=pass",
    ";; mx.test.com dmarc=pass ((",
])
def test_every_spelling_of_our_authserv_id_is_removed(value: str) -> None:
    data = message(extra=f"Authentication-Results: {value}\r\nAuthentication-Results : {value}\r\n")
    stripped = authres.strip_forged(data, "mx.test.com")
    assert b"Authentication-Results" not in stripped, stripped
    assert stripped.endswith(b"\r\n\r\nHello there.\r\n") and b"Subject: hi\r\n" in stripped


@pytest.mark.parametrize("value", [
    "upstream.example.net; spf=fail",
    "upstream.example.net; spf=pass (checked for mx.test.com.example.net)",
    "mx.test.com.example.net; dmarc=pass",
    "other-mx.test.com; dmarc=pass",
    '"upstream (x)"; none',
])
def test_other_servers_results_are_kept(value: str) -> None:
    data = message(extra=f"Authentication-Results: {value}\r\n")
    assert authres.strip_forged(data, "mx.test.com") == data
