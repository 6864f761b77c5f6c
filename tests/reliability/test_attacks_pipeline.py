"""Attacks through the whole pipeline: receiver -> router worker -> relay -> an SMTP sink.

Real processes (``lamson receiver``, ``lamson worker -burst``, ``lamson relay
-burst``) on free ports, a real Redis and a local sink standing in for the
smart host. Two questions: can input smuggle a second message or a bare
line ending past the relay, and can message text inject a recipient into a
reply rendered from templates?
"""

from __future__ import annotations

import base64
import email
from collections.abc import Iterator
from email.policy import default as default_policy
from pathlib import Path

import pytest

from tests.reliability.test_attacks_receiver import (
    DATA,
    EHLO,
    SMUGGLED,
    SMUGGLING,
    Wire,
    bare_eol,
    start_receiver,
)
from tests.sink import Sink, smtp_sink
from tests.support import make_project, run_lamson, stop_process

FORWARD = '''\
"""Forward everything for forward@lists.test.com to an archive, as a list would."""

from config.settings import relay

from lamson.router import route, stateless


@route("forward@lists\\\\.test\\\\.com")
@stateless
def START(message):
    relay.deliver(message, To="archive@example.net", From="forward@lists.test.com")
'''

SENDER = "victim-sender@example.org"


def q_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


#: Incoming headers whose text ends up in a reply's headers through the demo's templates.
INJECTIONS = [
    f"From: {SENDER}\r\nSubject: =?utf-8?q?Hi=0D=0ABcc:_evil1@example.net?=",
    f"From: {SENDER}\r\nSubject: {q_word('Hi' + chr(13) + chr(10) + 'Bcc: evil2@example.net' + chr(13) + chr(10) + 'X-Injected: yes')}",
    f"From: {SENDER}\r\nSubject: Hi\r\n Bcc: evil3@example.net",
    f"From: {SENDER}\r\nSubject: Hi\rBcc: evil4@example.net",
    f"From: {q_word('Eve' + chr(13) + chr(10) + 'Bcc: evil5@example.net')} <{SENDER}>\r\nSubject: Hi",
    f"From: {SENDER}\r\nSubject: {q_word('Hi' + chr(10) + 'To: evil6@example.net')}",
]


@pytest.fixture
def pipeline(tmp_path: Path, redis_url: str, redis_conn: object) -> Iterator[tuple[dict, Sink]]:
    with smtp_sink() as sink:
        project = make_project(tmp_path / "app", redis_url, relay_port=sink.port,
                               handlers=["app.handlers.sample", "app.handlers.forward"],
                               extra='served_domains = ["test.com", "lists.test.com"]\n')
        (project["root"] / "app" / "handlers" / "forward.py").write_text(FORWARD)
        proc = start_receiver(project["root"], project["receiver_port"])
        try:
            yield {**project, "proc": proc}, sink
        finally:
            stop_process(proc)


def send_raw(port: int, mail_from: str, rcpt: str, content: bytes) -> str:
    wire = Wire(port)
    try:
        for sent, expected in (EHLO, (f"MAIL FROM:<{mail_from}>", "250"), (f"RCPT TO:<{rcpt}>", "250"), DATA):
            wire.send(sent)
            assert wire.reply().startswith(expected)
        wire.send(content)
        reply = wire.reply()
        wire.send("QUIT")
        assert wire.reply().startswith("221")
        return reply
    finally:
        wire.close()


def drain(root: Path) -> None:
    """Route everything queued, then deliver everything routed; both processes end by themselves."""
    for stage in ("worker", "relay"):
        done = run_lamson(stage, "-burst", "-root", str(root), cwd=root, timeout=90)
        assert done.returncode == 0, done.stdout.decode(errors="replace")[-3000:]


def test_smuggled_sequences_leave_one_message_each_with_clean_line_endings(pipeline: tuple[dict, Sink]) -> None:
    project, sink = pipeline
    carriers = [s for s in SMUGGLING if b"\x00" not in s]
    for n, sequence in enumerate(carriers):
        content = (b"From: sender@example.org\r\nSubject: carrier %d\r\n\r\nbefore" % n) + sequence + SMUGGLED + b"\r\n.\r\n"
        assert send_raw(project["receiver_port"], "sender@example.org", "forward@lists.test.com", content).startswith("250")
    drain(project["root"])
    forwarded = [m for m in sink.messages if m.rcpt_tos == ["archive@example.net"]]
    assert len(forwarded) == len(carriers) == len(sink.messages)  # never a second, smuggled message
    for message in forwarded:
        assert not bare_eol(message.data), message.data
        assert b"I am a second message." in message.data and message.data.count(b"Subject: ") == 2
    assert sorted(m.data.split(b"Subject: carrier ")[1][:1] for m in forwarded) == \
        sorted(str(n).encode() for n in range(len(carriers)))
    assert not any("victim" in r for m in sink.messages for r in m.rcpt_tos)


def test_template_variables_cannot_add_recipients(pipeline: tuple[dict, Sink]) -> None:
    project, sink = pipeline
    for head in INJECTIONS:
        content = (head + "\r\nTo: hello@test.com\r\nMessage-ID: <m@example.org>\r\n\r\nHello.\r\n.\r\n").encode()
        assert send_raw(project["receiver_port"], SENDER, "hello@test.com", content).startswith("250")
    drain(project["root"])
    assert len(sink.messages) == len(INJECTIONS)
    for message in sink.messages:
        assert message.rcpt_tos == [SENDER], message.rcpt_tos
        assert not bare_eol(message.data)
        parsed = email.message_from_bytes(message.data, policy=default_policy)
        assert parsed["Bcc"] is None and parsed["X-Injected"] is None
        assert [str(v) for v in parsed.get_all("To")] == [SENDER]
        assert str(parsed["Subject"]).startswith("Re: Hi")  # the text arrived, as text
        header_block = message.data.split(b"\r\n\r\n", 1)[0]
        assert not any(line.lower().startswith((b"bcc:", b"x-injected:")) for line in header_block.split(b"\r\n"))
        assert not any(line.lower().startswith(b"to:") and b"evil" in line for line in header_block.split(b"\r\n"))
