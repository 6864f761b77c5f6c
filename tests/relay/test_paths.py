"""The relay writes plain MAIL/RCPT paths itself: exactly what smtplib would have written."""

from __future__ import annotations

import smtplib
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from lamson.encoding import ATOM, LABEL, PLAIN_ADDRESS

LOCAL = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~."
DOMAIN = string.ascii_letters + string.digits + ".-"


@settings(max_examples=2000, deadline=None)
@given(local=st.from_regex(rf"{ATOM}(\.{ATOM})*", fullmatch=True),
       domain=st.from_regex(rf"{LABEL}(\.{LABEL})*", fullmatch=True))
def test_a_plain_path_is_what_quoteaddr_gives(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    assert PLAIN_ADDRESS.fullmatch(address)
    assert smtplib.quoteaddr(address) == f"<{address}>"


def test_paths_on_the_wire_plain_quoted_and_utf8() -> None:
    """Through the relay's session class to a real SMTP server: the envelope arrives as sent."""
    from lamson.relay.smtp import PLAIN, Connections
    from tests.sink import smtp_sink

    with smtp_sink() as sink:
        smtp = Connections(timeout=10)
        try:
            for sender, rcpts in (("a.b+c@example.org", ["x@test.com", "y'z@test.com"]),
                                  ('"two words"@example.org', ["x@test.com"]),
                                  ("", ["x@test.com"])):
                assert smtp.send("127.0.0.1", sink.port, sender, rcpts, b"Subject: t\r\n\r\nhi\r\n", PLAIN) == {}
        finally:
            smtp.close_all()
    got = [(m.mail_from, m.rcpt_tos) for m in sink.messages]
    assert got == [("a.b+c@example.org", ["x@test.com", "y'z@test.com"]),
                   ('"two words"@example.org', ["x@test.com"]), ("<>", ["x@test.com"])]


ADDRESSES = st.one_of(
    st.builds(lambda a, b: f"{a}@{b}", st.text(alphabet=LOCAL, min_size=1, max_size=8),
              st.text(alphabet=DOMAIN, min_size=1, max_size=8)),
    st.sampled_from(["", " a@b.org ", "Ann <ann@x.org>", '"a b"@x.org', "a@b.org, c@d.org", "(c) a@b.org",
                     "a@b@c", "<a@b.org>", "=?utf-8?q?x?= <q@x.org>", "undisclosed-recipients:;"]),
)


@settings(max_examples=1000, deadline=None)
@given(sender=ADDRESSES, to=ADDRESSES, cc=ADDRESSES, bcc=ADDRESSES)
def test_envelope_of_takes_bare_addresses_as_the_email_package_would(sender: str, to: str, cc: str,
                                                                     bcc: str) -> None:
    """envelope_of skips parseaddr/getaddresses for bare addresses: the same envelope as with them."""
    from email.utils import getaddresses, parseaddr

    from lamson.relay.client import envelope_of

    headers = {"From": sender, "To": to, "Cc": cc, "Bcc": bcc}
    expected_rcpts = list(dict.fromkeys(a for _, a in getaddresses([to, cc, bcc]) if a))
    assert envelope_of(headers) == (parseaddr(sender)[1], expected_rcpts)
