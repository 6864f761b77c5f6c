"""Issue 21's attacks on the list example (findings 3, 5 and 6), sent over SMTP to its real pipeline.

The pipeline is the example's own supervisord (receiver, router workers, relay,
Redis) in a copy of the example on free ports, delivering to a capturing sink
(tests/examples/test_list.py's ``list_pipeline``). Loopback only; each test
sends a bounded number of messages. Nothing on loopback passes DMARC and
nobody logs in, so no sender here is verified: exactly the forger's position.
"""

from __future__ import annotations

import re
import smtplib
import time

import pytest

from tests.examples.conftest import short_tmp  # noqa: F401 - the fixture list_pipeline needs
from tests.examples.test_list import (  # noqa: F401 - list_pipeline is a fixture
    ALICE,
    BOB,
    HOST,
    ListPipeline,
    dsn,
    header,
    list_pipeline,
    post,
)
from tests.sink import Received
from tests.support import wait_for


@pytest.fixture
def p(list_pipeline: ListPipeline) -> ListPipeline:  # noqa: F811 - the fixture imported above
    """The list example's pipeline, started for each test."""
    return list_pipeline

MEMBERS = "list:list:lamson:members"


def smtp(p: ListPipeline, mail_from: str, rcpts: list[str], data: str) -> None:
    with smtplib.SMTP("127.0.0.1", p.ports["receiver"], timeout=30) as client:
        client.sendmail(mail_from, rcpts, data)


def forged(p: ListPipeline, envelope: str, from_line: str, subject: str) -> None:
    data = f"From: {from_line}\r\nTo: lamson@{HOST}\r\nSubject: {subject}\r\n\r\nForged body {subject}.\r\n"
    smtp(p, envelope, [f"lamson@{HOST}"], data)


def test_forged_senders_never_reach_the_members(p: ListPipeline) -> None:
    """Finding 3: one forged header (or envelope, or both, or a display name) posted to every member."""
    p.redis().sadd(MEMBERS, ALICE, BOB)
    forged(p, "mallory1@evil.test", f"Alice <{ALICE}>", "v1")  # the finding: a forged From
    forged(p, ALICE, "mallory2@evil.test", "v2")  # a forged envelope
    forged(p, ALICE, f"Alice <{ALICE}>", "v3")  # both
    forged(p, "mallory4@evil.test", f'"{ALICE}" <mallory4@evil.test>', "v4")  # Alice only in the display name
    forged(p, "mallory5@evil.test", f"Alice <{ALICE}>, Mallory <mallory5@evil.test>", "v5")  # two authors
    # What each one gets instead: the member named in From is asked to confirm (the forger never
    # sees the secret); everyone else is told only members post.
    for subject in ("v1", "v3"):
        request = p.wait_for_mail(ALICE, f'"{subject}"'.encode(), f"Alice's request to confirm {subject}")
        assert b"Confirm your post" in request.data
    p.wait_for_mail(ALICE, b'"v2"', "the refusal of v2 to its envelope sender")
    for n in (4, 5):
        refusal = p.wait_for_mail(f"mallory{n}@evil.test", f'"v{n}"'.encode(), f"the refusal of v{n}")
        assert b"Only members post" in refusal.data
    time.sleep(1.0)  # a copy would have left with the requests: the relay delivers in order per recipient
    assert p.sent_to(BOB) == []
    assert not p.sent_to(ALICE, b"Forged body")
    assert not p.sent_to("mallory1@evil.test") and not p.sent_to("mallory2@evil.test")
    assert len(p.sent_to(ALICE)) == 3  # two requests, one refusal: nothing else
    assert not (p.root / "run" / "archive" / "lamson").exists() or \
        not any((p.root / "run" / "archive" / "lamson" / "new").iterdir())


def test_a_confirmation_bomb_is_capped_per_victim(p: ListPipeline) -> None:
    """Finding 5: 8 list addresses per message, N messages, the victim as sender: at most the cap arrives."""
    victim = "victim@example.net"
    rcpts = [f"{name}{suffix}@{HOST}" for name in ("lamson", "announce")
             for suffix in ("-subscribe", "-help", "-unsubscribe", "")]
    rounds = 25
    data = f"From: {victim}\r\nTo: lamson@{HOST}\r\nSubject: bomb\r\n\r\nhello\r\n"
    for _ in range(rounds):
        smtp(p, victim, rcpts, data)
    conn = p.redis()

    def attempts() -> tuple[int, int]:
        keys = conn.keys(f"list:unsolicited:{victim}:*")
        return sum(int(v or 0) for v in conn.mget(keys)) if keys else 0, len(keys)

    # Every routed copy asks the cap once: 3 answers per list per message (subscribe, help,
    # unsubscribe), and one refusal per list for the post (once a day per sender).
    expected = rounds * 6 + 2
    wait_for(lambda: attempts()[0] >= expected, 120, 0.2, f"{expected} unsolicited attempts to the victim")
    time.sleep(1.0)  # the relay delivers what the workers sent
    got = p.sent_to(victim)
    hours = attempts()[1]  # a test crossing a clock hour may send the cap once per hour
    assert 1 <= len(got) <= 5 * hours, (len(got), hours)
    assert attempts()[0] == expected
    pending = [f for sub in ("new", "cur") for f in (p.root / "run" / "pending" / sub).glob("*")]
    assert len(pending) <= 2  # one pending subscription per list for the victim, never one per message


def test_forged_bounces_never_disable_and_real_ones_still_count(p: ListPipeline) -> None:
    """Finding 6: three bounces from <> to a member's VERP address disabled them."""
    conn = p.redis()
    conn.sadd(MEMBERS, ALICE, BOB)
    post(p, ALICE, "Hello", "A real post.")
    alice_path = p.wait_for_mail(ALICE, b"A real post.", "Alice's copy").mail_from
    bob_path = p.wait_for_mail(BOB, b"A real post.", "Bob's copy").mail_from
    found = re.fullmatch(r"lamson-bounce\+(?P<member>[^@]+)=(?P<tag>[a-z2-7]{12})@test\.com", bob_path)
    assert found, bob_path
    bob_verp, bob_tag = found["member"], found["tag"]
    alice_tag = alice_path.split("@")[0].rpartition("=")[2]
    wrong = "a" * 12 if bob_tag != "a" * 12 else "b" * 12
    forgeries = [
        f"lamson-bounce+{bob_verp}@{HOST}",  # the finding: no tag (also every return path from before tags)
        f"lamson-bounce+{bob_verp}={wrong}@{HOST}",  # a wrong tag
        f"lamson-bounce+{bob_verp}={alice_tag}@{HOST}",  # a real tag, for another member
        f"lamson-bounce+{bob_verp}={bob_tag.upper()[:11]}@{HOST}",  # cut short
    ]
    # Bob's own tag on another list: announce's return path for Bob has another tag.
    conn.sadd("list:list:announce:members", BOB)
    forgeries.append(f"announce-bounce+{bob_verp}={bob_tag}@{HOST}")
    for path in forgeries:
        for _ in range(3):
            smtp(p, "", [path], dsn(path, BOB))
    for _ in range(3):  # real bounces, after the forged ones in the same (null) sender's line
        smtp(p, "", [alice_path], dsn(alice_path, ALICE))
    notice = p.wait_for_mail(ALICE, b"is disabled", "the notice that Alice is disabled")
    assert notice.mail_from == "<>"
    assert conn.sismember(MEMBERS, BOB) and conn.sismember("list:list:announce:members", BOB)
    assert conn.hget("list:list:lamson:bounces", f"{BOB}:hard") is None
    assert conn.hget("list:list:announce:bounces", f"{BOB}:hard") is None
    assert conn.hget("list:list:lamson:bounces", f"{ALICE}:hard") == b"3"
    assert not conn.sismember(MEMBERS, ALICE)
    assert not p.sent_to(BOB, b"is disabled")


def test_fan_out_to_200_members_is_not_capped(p: ListPipeline) -> None:
    """The unsolicited cap and the reply limit leave a post's copies alone: every member gets one, quickly."""
    many = [f"member{n:03d}@example.com" for n in range(200)]
    p.redis().sadd(MEMBERS, ALICE, *many)
    started = time.monotonic()
    post(p, ALICE, "To everyone", "Fan-out body.")

    def copies() -> list[Received]:
        with p.sink.lock:
            return [m for m in p.sink.messages if b"Fan-out body." in m.data]

    wait_for(lambda: len(copies()) >= 201, 90, 0.1, "201 copies")
    took = time.monotonic() - started
    time.sleep(0.5)
    assert sorted(r for m in copies() for r in m.rcpt_tos) == sorted([ALICE, *many])  # each once
    assert all(header(m, "List-Id") for m in copies())
    assert took < 60, f"fan-out to 201 members took {took:.1f}s"
