"""message.sender: who sent this, verified how (lamson.identity)."""

from __future__ import annotations

from lamson.authres import AuthResults
from lamson.envelope import Envelope
from lamson.mail import MailRequest


def request(from_lines: list[str], auth: AuthResults | None, *, user: str = "") -> MailRequest:
    head = "".join(f"From: {line}\r\n" for line in from_lines)
    message = MailRequest("192.0.2.1", "bounce@mail.example.org", "list@test.com",
                          f"{head}To: list@test.com\r\nSubject: hi\r\n\r\nbody\r\n".encode())
    message.envelope = Envelope("bounce@mail.example.org", ("list@test.com",), extra={"auth": user} if user else {})
    message.auth = auth
    return message


def results(**values: object) -> AuthResults:
    return AuthResults(authserv_id="mx.test.com", from_domain="example.org", **values)  # type: ignore[arg-type]


def test_dmarc_pass_verifies_the_from_author() -> None:
    message = request(["Alice <Alice@Example.org>"], results(dmarc="pass", dmarc_policy="reject"))
    assert message.sender == "alice@example.org"
    assert message.identity.method == "dmarc" and message.identity.claimed == "alice@example.org"


def test_several_authors_are_never_verified() -> None:
    passing = results(dmarc="pass", dmarc_policy="reject")
    for lines in (["alice@example.org", "mallory@evil.test"], ["alice@example.org, mallory@evil.test"],
                  ["alice@example.org", "alice@example.org"]):
        message = request(lines, passing)
        assert message.sender is None and "From authors" in message.identity.reason, lines


def test_without_a_dmarc_record_an_aligned_signature_or_spf_pass_will_do() -> None:
    assert request(["alice@example.org"], results(dkim="pass", dkim_domains=["mail.example.org"])).identity.method \
        == "dkim"
    assert request(["alice@example.org"], results(spf="pass", spf_domain="bounce.example.org")).identity.method \
        == "spf"
    unaligned = results(spf="pass", spf_domain="evil.test", dkim="pass", dkim_domains=["evil.test"])
    assert request(["alice@example.org"], unaligned).sender is None


def test_a_dmarc_record_that_does_not_pass_is_not_overruled_by_spf_or_dkim() -> None:
    failing = results(dmarc="fail", dmarc_policy="none", spf="pass", spf_domain="example.org")
    message = request(["alice@example.org"], failing)
    assert message.sender is None and "dmarc=fail" in message.identity.reason


def test_results_for_another_domain_or_none_verify_nobody() -> None:
    other = AuthResults(authserv_id="mx.test.com", from_domain="other.test", dmarc="pass")
    assert request(["alice@example.org"], other).sender is None
    assert request(["alice@example.org"], None).sender is None
    assert request([], results(dmarc="pass")).sender is None


def test_the_submission_user_is_the_sender_whatever_the_headers_say() -> None:
    message = request(["Someone <someone@else.test>"], None, user="Alice@Example.org")
    assert message.sender == "alice@example.org" and message.identity.method == "auth"


def test_a_from_no_parser_can_read_verifies_nobody_and_does_not_raise() -> None:
    nested = "(" * 2000 + "x" + ")" * 2000
    message = request([f"{nested} alice@example.org"], results(dmarc="pass"))
    assert message.sender is None
