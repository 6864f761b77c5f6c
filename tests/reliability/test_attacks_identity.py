"""Issue 21, findings 4, 8 and 10 (RFC 3834), sent over SMTP to the real pipeline.

``lamson receiver`` on a free port, ``lamson worker -burst`` with sender authentication on (a DNS
server in this process serves the zone: example.org publishes SPF, a DKIM key and DMARC p=reject),
``lamson relay -burst`` into an SMTP sink. Two handlers: the demo's, which answers every message it
may answer (RFC 3834), and ``report@test.com``, which sends the archive what it saw (message.auth,
message.sender, the Authentication-Results headers). The receiver sees the client on loopback, so SPF
is ``none``: only a DKIM signature of example.org can make DMARC pass.
"""

from __future__ import annotations

import email
import json
from collections.abc import Iterator
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from tests.dnsserver import dns_server
from tests.reliability.test_attacks_pipeline import send_raw
from tests.reliability.test_attacks_receiver import start_receiver
from tests.shared.test_authres import ZONE, signed
from tests.sink import Sink, smtp_sink
from tests.support import make_project, run_lamson, stop_process

REPORT = '''\
"""Tell the archive what sender authentication said of each message (the test reads it)."""

import json

from config.settings import relay

from lamson.mail import MailResponse
from lamson.router import route, stateless


@route("report@test\\\\.com")
@stateless
def START(message):
    auth = message.auth
    seen = {"dmarc": auth.dmarc if auth else None, "policy": auth.dmarc_policy if auth else None,
            "reason": auth.reason if auth else None, "sender": message.sender,
            "identity": message.identity.reason, "ar": message.get_all("Authentication-Results"),
            "subject": message["subject"]}
    relay.deliver(MailResponse(To="archive@example.net", From="report@test.com", Subject="report",
                               Body=json.dumps(seen)))
'''

AUTHSERV = "mx.test.com"
ARCHIVE = "archive@example.net"
SENDER = "alice@example.org"


def fold(text: str, width: int = 200) -> str:
    """A long header value folded at white space every ``width`` characters (SMTP lines stay short)."""
    return "\r\n ".join(text[i:i + width] for i in range(0, len(text), width))


NESTED = fold("(" * 2000 + "c" + ")" * 2000)


@pytest.fixture
def pipeline(tmp_path: Path, redis_url: str, redis_conn: object) -> Iterator[tuple[dict[str, Any], Sink]]:
    with smtp_sink() as sink, dns_server(ZONE) as dns:
        extra = (f"served_domains = ['test.com']\ndns_config = {dns.config!r}\nauthserv_id = {AUTHSERV!r}\n"
                 "dmarc_reject_park = True\n")
        project = make_project(tmp_path / "app", redis_url, relay_port=sink.port, extra=extra,
                               handlers=["app.handlers.report", "app.handlers.sample"])
        (project["root"] / "app" / "handlers" / "report.py").write_text(REPORT)
        proc = start_receiver(project["root"], project["receiver_port"])
        try:
            yield {**project, "proc": proc}, sink
        finally:
            stop_process(proc)


def send(project: dict[str, Any], head: str, rcpt: str, *, sign: bool = False, subject: str = "hi") -> None:
    data = f"{head}To: {rcpt}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\nHello.\r\n".encode()
    if sign:
        data = signed(data)
    reply = send_raw(project["receiver_port"], SENDER, rcpt, data + b".\r\n")
    assert reply.startswith("250"), reply


def drain(root: Path) -> None:
    """Route (sender authentication on, against the test's DNS server), then deliver, what waits."""
    for stage in ("worker", "relay"):
        done = run_lamson(stage, "-burst", "-root", str(root), cwd=root, timeout=120,
                          env={"LAMSON_AUTH_RESULTS": "1"})
        assert done.returncode == 0, done.stdout.decode(errors="replace")[-3000:]


def reports(sink: Sink) -> dict[str, dict[str, Any]]:
    """What report@test.com saw, by the Subject of the message it saw."""
    found = {}
    for message in sink.messages:
        if message.rcpt_tos == [ARCHIVE]:
            seen = json.loads(email.message_from_bytes(message.data, policy=default_policy).get_content())
            found[seen["subject"]] = seen
    return found


def parked(root: Path) -> list[bytes]:
    folder = root / "run" / "undeliverable"
    return [p.read_bytes() for p in folder.rglob("*") if p.is_file()]


#: From headers that name p=reject example.org with others, or unreadably: each must be parked, not routed.
SEVERAL_OR_UNREADABLE = {
    "two-from": "From: Mallory <mallory@evil.test>\r\nFrom: Alice <alice@example.org>\r\n",
    "two-from-reversed": "From: Alice <alice@example.org>\r\nFrom: mallory@evil.test\r\n",
    "two-in-one": "From: Alice <alice@example.org>, mallory@evil.test\r\n",
    "group": "From: friends: alice@example.org, mallory@evil.test;\r\n",
    "same-twice": "From: alice@example.org\r\nFrom: alice@example.org\r\n",
    "spaced-colon": "From: mallory@evil.test\r\nFrom : alice@example.org\r\n",
    "nested-comments": f"From: {NESTED} alice@example.org\r\n",
    "nested-in-name": f"From: Alice {NESTED} <alice@example.org>\r\n",
}


def test_several_or_unreadable_from_authors_of_a_p_reject_domain_are_parked_not_answered(
        pipeline: tuple[dict[str, Any], Sink]) -> None:
    """Finding 4: two From fields, two authors in one, 2,000 nested comments: parked as a p=reject fail."""
    project, sink = pipeline
    for name, head in SEVERAL_OR_UNREADABLE.items():
        send(project, head, "report@test.com", subject=name)
    # Controls: one author, signed by example.org, passes and is answered; unsigned, it is parked too.
    send(project, "From: Alice <alice@example.org>\r\n", "report@test.com", sign=True, subject="signed")
    send(project, "From: Alice <alice@example.org>\r\n", "report@test.com", subject="unsigned")
    drain(project["root"])
    seen = reports(sink)
    assert set(seen) == {"signed"}, seen  # nothing else reached a handler
    assert seen["signed"]["dmarc"] == "pass" and seen["signed"]["sender"] == SENDER
    assert [m.rcpt_tos for m in sink.messages if m.rcpt_tos != [ARCHIVE]] == [[SENDER]]  # one answer: signed's
    held = parked(project["root"])
    assert len(held) == len(SEVERAL_OR_UNREADABLE) + 1
    for data in held:
        assert b"DMARC fail for example.org, whose policy is p=reject" in data, data[:600]


def test_several_authors_signed_by_the_domain_still_do_not_pass(pipeline: tuple[dict[str, Any], Sink]) -> None:
    """A valid example.org signature does not make a two-author From pass: nobody is the verified sender."""
    project, sink = pipeline
    send(project, "From: alice@example.org\r\nFrom: mallory@evil.test\r\n", "report@test.com", sign=True,
         subject="signed-two")
    drain(project["root"])
    assert reports(sink) == {}
    (data,) = parked(project["root"])
    assert b"p=reject" in data


#: Authentication-Results that claim our authserv-id in other spellings (finding 8).
FORGED = [
    f"((((c)))) {AUTHSERV}; dmarc=pass header.from=example.org",
    f"(a\\)b) {AUTHSERV}; dmarc=pass header.from=example.org",
    f"{AUTHSERV.upper()}; dmarc=pass header.from=example.org",
    f"{AUTHSERV}.; dmarc=pass header.from=example.org",
    f'"{AUTHSERV}"; dmarc=pass header.from=example.org',
    f"{fold('(' * 1500 + ')' * 1500)} {AUTHSERV}; dmarc=pass",
]


def test_forged_authentication_results_in_every_spelling_are_removed(pipeline: tuple[dict[str, Any], Sink]) -> None:
    project, sink = pipeline
    forged = "".join(f"Authentication-Results: {value}\r\n" for value in FORGED)
    upstream = "Authentication-Results: upstream.example.net; spf=fail\r\n"
    # Signed, so DMARC passes and the message is routed: the handler sees what survived.
    send(project, f"From: Alice <alice@example.org>\r\n{forged}{upstream}", "report@test.com", sign=True,
         subject="forged")
    drain(project["root"])
    (ours, theirs) = reports(sink)["forged"]["ar"]
    assert ours.startswith(f"{AUTHSERV};") and "dmarc=pass" in ours
    assert theirs == "upstream.example.net; spf=fail"


#: Headers that each mean "do not answer" (RFC 3834), in the spellings that drew an answer (finding 10).
AUTOMATIC = {
    "quoted-precedence": 'Precedence: "bulk"\r\n',
    "spaced-auto-submitted": "Auto-submitted : auto-replied\r\n",
    "tab-auto-submitted": "Auto-Submitted\t:\tAuto-Replied\r\n",
    "auto-generated-params": "Auto-Submitted: auto-generated; foo=bar\r\n",
    "precedence-list": "Precedence: LIST\r\n",
    "precedence-junk": "precedence:\tjunk (robot)\r\n",
    "quoted-auto-submitted": 'Auto-Submitted: "auto-replied"\r\n',
}


def test_automatic_mail_in_any_spelling_draws_no_answer(pipeline: tuple[dict[str, Any], Sink]) -> None:
    project, sink = pipeline
    # From a domain without DMARC (dkimpy cannot even sign a header block with "Auto-submitted :" in it).
    for name, header in AUTOMATIC.items():
        send(project, f"From: Robot <robot@elsewhere.test>\r\n{header}", "hello@test.com", subject=name)
    send(project, "From: Bob <bob@elsewhere.test>\r\nAuto-Submitted: no\r\n", "hello@test.com", subject="person")
    drain(project["root"])
    answers = [m for m in sink.messages if m.rcpt_tos == [SENDER]]
    subjects = [str(email.message_from_bytes(m.data, policy=default_policy)["Subject"]) for m in answers]
    assert subjects == ["Re: person"], subjects
