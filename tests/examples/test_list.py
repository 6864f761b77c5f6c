"""examples/list, the mailing list manager: its own tests, and one round trip through the real pipeline.

The pipeline is the example's own deploy/supervisord.conf, started in a copy of
the example on free ports (``tmp/examples/list``, with ``tmp/.venv`` linking to
this repository's virtualenv so the copy's PATH line finds ``lamson``). Its
smart host is a capturing SMTP server in this process (tests/sink.py), so the
envelope of every copy is visible; the logging server is left out of the copy.
"""

from __future__ import annotations

import os
import re
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lamson.connection import with_credentials
from tests.examples.conftest import copy_example
from tests.sink import Received, Sink, smtp_sink
from tests.support import Supervised, free_port, pipeline_env, redis_server, supervised, wait_for

HOST = "test.com"
ALICE = "alice@example.org"
BOB = "bob+lists@example.net"


def test_the_examples_own_tests_pass(tmp_path: Path) -> None:
    """As a user runs them (no servers), plus the member-store tests against a real Redis (RedisMembers)."""
    root = copy_example("list", tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMSON_", "PYTEST"))}
    with redis_server(tmp_path / "redis") as (url, _):
        env["LIST_TEST_REDIS_URL"] = url
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"], cwd=root,
                              env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\b\d{2,} passed", done.stdout), done.stdout[-500:]
    for test in ("test_add_disable_and_come_back", "test_refusal_once_per_interval"):
        assert f"PASSED tests/model/test_members.py::{test}[redis]" in done.stdout, done.stdout[-3000:]
    assert sorted(p.name for p in (root / "run").iterdir()) == ["README.md"]  # the tests leave no mail behind


class ListPipeline(Supervised):
    """The example's supervisord on free ports, and the sink its relay delivers to."""

    def __init__(self, root: Path, env: dict[str, str], ports: dict[str, int], sink: Sink) -> None:
        super().__init__(root, env)
        self.ports = ports
        self.sink = sink

    def send(self, sender: str, to: str, subject: str, body: str = "", headers: str = "") -> None:
        data = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{headers}\r\n{body}\r\n"
        with smtplib.SMTP("127.0.0.1", self.ports["receiver"], timeout=30) as smtp:
            smtp.sendmail(sender, [to], data)

    def sent_to(self, address: str, needle: bytes = b"") -> list[Received]:
        with self.sink.lock:
            return [m for m in self.sink.messages if address in m.rcpt_tos and needle in m.data]

    def wait_for_mail(self, address: str, needle: bytes, what: str) -> Received:
        found: list[Received] = wait_for(lambda: self.sent_to(address, needle), 30, 0.05, what)
        return found[-1]

    def redis(self) -> redis.Redis:
        url = with_credentials(f"redis://127.0.0.1:{self.ports['redis']}/0", self.root / "run")
        return redis.Redis.from_url(url)


@pytest.fixture
def list_pipeline(short_tmp: Path) -> Iterator[ListPipeline]:
    root = copy_example("list", short_tmp)
    conf = root / "deploy" / "supervisord.conf"
    # The capturing sink takes the relay's port: the logging server is not started.
    conf.write_text(conf.read_text().split("; Development only: the logging server")[0])  # and lamson web after it
    ports = {"redis": free_port(), "receiver": free_port(), "metrics": free_port()}
    with smtp_sink() as sink:
        env = pipeline_env(ports, LAMSON_RELAY_PORT=str(sink.port))
        with supervised(root, env, 6, (ports["receiver"],)):
            yield ListPipeline(root, env, ports, sink)


def header(message: Received, name: str) -> str | None:
    found = re.search(rb"^" + name.encode() + rb":[ \t]*([^\r\n]*)", message.data, re.IGNORECASE | re.MULTILINE)
    return found.group(1).decode() if found else None


def subscribe(p: ListPipeline, address: str) -> None:
    p.send(address, f"lamson-subscribe@{HOST}", "subscribe")
    request = p.wait_for_mail(address, b"Confirm your subscription", f"the confirmation request to {address}")
    confirm = header(request, "Reply-To")
    assert confirm and re.fullmatch(r"lamson-confirm-[a-f0-9]{32}@test\.com", confirm), confirm
    p.send(address, confirm, "Re: Confirm your subscription", "yes")
    p.wait_for_mail(address, b"Welcome to lamson@test.com", f"the welcome to {address}")


def post(p: ListPipeline, member: str, subject: str, body: str, headers: str = "") -> None:
    """Post as ``member`` over loopback SMTP: nothing verifies the sender (no submission login, no DMARC
    pass), so the list holds the post and asks the member to confirm; answer that request."""
    p.send(member, f"lamson@{HOST}", subject, body, headers)
    needle = f'"{subject}"'.encode()
    found: list[Received] = wait_for(lambda: [m for m in p.sent_to(member, b"Confirm your post") if needle in m.data],
                                     30, 0.05, f"the request to confirm {subject!r} to {member}")
    confirm = header(found[-1], "Reply-To")
    assert confirm and re.fullmatch(r"lamson-post-confirm-[a-f0-9]{32}@test\.com", confirm), confirm
    p.send(member, confirm, "Re: Confirm your post", "yes")


def dsn(to: str, recipient: str) -> str:
    return ("From: MAILER-DAEMON@mx.example.net\r\n"
            f"To: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nUser unknown.\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n")


def test_subscribe_post_and_bounce_through_the_pipeline(list_pipeline: ListPipeline) -> None:
    p = list_pipeline
    subscribe(p, ALICE)
    subscribe(p, BOB)
    conn = p.redis()
    assert {m.decode() for m in conn.smembers("list:list:lamson:members")} == {ALICE, BOB}

    post(p, ALICE, "Hello list", "My first post.")
    copies = {who: p.wait_for_mail(who, b"My first post.", f"the copy for {who}") for who in (ALICE, BOB)}
    for who, copy in copies.items():
        assert copy.rcpt_tos == [who]
        local, domain = who.split("@")
        assert re.fullmatch(rf"lamson-bounce\+{re.escape(local.replace('+', '+2b'))}={re.escape(domain)}"
                            rf"=[a-z2-7]{{12}}@{re.escape(HOST)}", copy.mail_from), copy.mail_from
        assert header(copy, "List-Id") == "Talk about the Lamson mail framework <lamson.test.com>"
        assert header(copy, "List-Unsubscribe") == "<mailto:lamson-unsubscribe@test.com>"
        assert header(copy, "List-Post") == "<mailto:lamson@test.com>"
        assert header(copy, "List-Help") == "<mailto:lamson-help@test.com>"
        assert header(copy, "List-Archive") == "<https://test.com/archive/lamson/>"
        assert header(copy, "Precedence") == "list"
        assert header(copy, "Subject") == "Hello list"
    assert len(os.listdir(p.root / "run" / "archive" / "lamson" / "new")) == 1

    # A member's auto-reply to the list is not passed on. One sender's mail is handled in order, so
    # once her next post has reached both members, the auto-reply before it was handled (and dropped).
    p.send(ALICE, f"lamson@{HOST}", "Out of office", "Away.", "Auto-Submitted: auto-replied\r\n")
    post(p, ALICE, "Second post", "Still here.")
    for who in (ALICE, BOB):
        p.wait_for_mail(who, b"Still here.", f"the second post's copy for {who}")
    assert not p.sent_to(BOB, b"Out of office") and not p.sent_to(ALICE, b"Out of office")
    assert (p.root / "run" / "verp.key").stat().st_mode & 0o777 == 0o600  # the VERP signing secret
    # Bob's server refuses his copies: three hard bounces to his VERP return path disable him.
    return_path = copies[BOB].mail_from
    for _ in range(3):
        with smtplib.SMTP("127.0.0.1", p.ports["receiver"], timeout=30) as smtp:
            smtp.sendmail("", [return_path], dsn(return_path, BOB))
    notice = p.wait_for_mail(BOB, b"is disabled", "the notice that Bob is disabled")
    assert notice.mail_from == "<>"  # aiosmtpd's spelling of the null reverse-path
    assert b"lamson-subscribe@test.com" in notice.data
    assert conn.hget("list:list:lamson:bounces", f"{BOB}:hard") == b"3"
    assert {m.decode() for m in conn.smembers("list:list:lamson:members")} == {ALICE}
    assert {m.decode() for m in conn.smembers("list:list:lamson:disabled")} == {BOB}
