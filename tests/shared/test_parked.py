"""One parked record (lamson.parked): written alike by every stage, read back in every form ever written,
and requeued to the group the message came from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from lamson import parked, rqcompat
from lamson.envelope import Envelope
from lamson.mail import MailRequest
from lamson.order import Lines
from lamson.queue import Queue
from lamson.requeue import requeue
from lamson.router import Router
from lamson.runtime import Runtime
from lamson.spool import MaildirSpool
from lamson.testing import router_snapshot
from lamson.workers import jobs
from lamson.workers.queue_receiver import QueueReceiver, announce
from tests.support import router_runtime
from tests.workers import lifecycle_handlers as handlers

MESSAGE = b"From: a@example.org\r\nTo: help@test.com, other@test.com\r\nSubject: crash me\r\n\r\nbody\r\n"
ENVELOPE = Envelope("a@example.org", ("help@test.com", "other@test.com"), peer="192.0.2.1:4242", helo="mx.example",
                    queue="posts", attempts=2, extra={"deferred": "1"})


def maildir_files(path: Path) -> list[Path]:
    return sorted((path / "new").iterdir()) if (path / "new").is_dir() else []


# -- the writer and the reader -------------------------------------------------------------------------


def test_round_trip_keeps_envelope_reason_and_bytes(tmp_path: Path) -> None:
    key = parked.park(tmp_path / "undeliverable", ENVELOPE, "app.START raised RuntimeError:\r\nX-Injected: yes\x00",
                      MESSAGE)
    data = (tmp_path / "undeliverable" / "new" / key).read_bytes()
    assert data.startswith(b"X-Lamson-Envelope: {")  # headers a mail reader shows, before the message's own
    assert b"\r\nX-Lamson-Reason: app.START raised RuntimeError: X-Injected: yes\r\nFrom: a@example.org" in data
    found = parked.read(data)
    assert found.envelope == ENVELOPE  # group, attempts, id, peer, helo, received_at, extra: all of it
    assert found.reason == "app.START raised RuntimeError: X-Injected: yes"
    assert found.message == MESSAGE
    assert found.sent_back() == replace(ENVELOPE, attempts=0)


def test_reason_is_one_short_ascii_line_and_line_endings_follow_the_message() -> None:
    lf = MESSAGE.replace(b"\r\n", b"\n")
    data = parked.record(ENVELOPE, "caf\u00e9 " + "x" * 2000, lf)
    head, _, rest = data.partition(b"\nFrom:")
    assert b"\r" not in head and head.count(b"\n") == 1  # two header lines, LF like the message
    reason = parked.read(data).reason
    assert reason.startswith("caf\\xe9 x") and len(reason) == parked.MAX_REASON + len("\\xe9") - 1
    assert parked.read(data).message == lf


def test_an_unreadable_record_keeps_its_bytes_and_has_no_envelope(tmp_path: Path) -> None:
    raw = b'{"v":99,"mail_from":"x"}\n' + MESSAGE
    key = parked.park(tmp_path / "u", None, "unreadable spool record K: UnknownSchema: 99", raw)
    data = (tmp_path / "u" / "new" / key).read_bytes()
    assert data == b"X-Lamson-Reason: unreadable spool record K: UnknownSchema: 99\r\n" + raw
    found = parked.read(data)
    assert (found.envelope, found.message) == (None, raw)
    with pytest.raises(parked.NotParked, match="unreadable record"):
        found.sent_back()


def test_what_lamson_did_not_park_is_refused() -> None:
    with pytest.raises(parked.NotParked, match="not a message Lamson parked"):
        parked.read(MESSAGE)
    with pytest.raises(parked.NotParked, match="X-Lamson-Envelope cannot be read"):
        parked.read(b"X-Lamson-Envelope: {not json\r\nX-Lamson-Reason: x\r\n" + MESSAGE)


# -- the forms earlier versions wrote, byte for byte --------------------------------------------------


def test_reads_the_spools_old_form() -> None:
    record = {"v": 2, "mail_from": "a@example.org", "rcpt_tos": ["help@test.com"], "peer": "p", "helo": "h",
              "id": "ABC", "received_at": 1.5, "queue": "posts", "extra": {}, "attempts": 3}
    old = (b"X-Lamson-Envelope: " + json.dumps(record, separators=(",", ":")).encode() + b"\r\n"
           b"X-Lamson-Reason: 3 attempts failed\r\n") + MESSAGE
    found = parked.read(old)
    assert found.envelope is not None
    assert (found.envelope.queue, found.envelope.id, found.envelope.attempts) == ("posts", "ABC", 3)
    assert (found.reason, found.message) == ("3 attempts failed", MESSAGE)


def test_reads_the_old_unreadable_form() -> None:
    raw = b"{broken\n" + MESSAGE
    found = parked.read(b"X-Lamson-Reason: unreadable spool record K: JSONDecodeError: x\r\n" + raw)
    assert (found.envelope, found.reason, found.message) == (None, "unreadable spool record K: JSONDecodeError: x",
                                                             raw)


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_reads_the_routers_old_from_to_form(eol: bytes) -> None:
    message = MESSAGE.replace(b"\r\n", eol)
    old = (b"X-Lamson-Envelope-From: a@example.org" + eol + b"X-Lamson-Envelope-To: help@test.com" + eol
           + b"X-Lamson-Reason: app.START raised RuntimeError: boom" + eol + message)
    found = parked.read(old)
    assert found.envelope is not None
    assert (found.envelope.mail_from, found.envelope.rcpt_tos, found.envelope.queue) == \
        ("a@example.org", ("help@test.com",), "incoming")  # the old form never said which group
    assert (found.reason, found.message) == ("app.START raised RuntimeError: boom", message)
    bounce = parked.read(b"X-Lamson-Envelope-From: None\r\nX-Lamson-Envelope-To: help@test.com\r\n"
                         b"X-Lamson-Reason: no route\r\n" + MESSAGE)
    assert bounce.envelope is not None and bounce.envelope.mail_from == ""


def test_reads_the_old_quarantined_form() -> None:
    record = {"v": 1, "mail_from": "", "rcpt_tos": ["x@test.com", "y@test.com"], "queue": "lamson-posts"}
    old = b"X-Lamson-Quarantined: too deep\r\nX-Lamson-Envelope: " + json.dumps(record).encode() + b"\r\n" + MESSAGE
    found = parked.read(old)
    assert found.envelope is not None
    assert (found.envelope.mail_from, found.envelope.rcpt_tos, found.envelope.queue) == \
        ("", ("x@test.com", "y@test.com"), "posts")
    assert (found.reason, found.message) == ("quarantined: too deep", MESSAGE)


# -- the envelope a message is parked with ------------------------------------------------------------


def test_envelope_of_a_routed_message_is_its_spooled_one_for_the_recipient_routed() -> None:
    message = MailRequest("192.0.2.1:4242", "a@example.org", "other@test.com", MESSAGE)
    message.envelope = ENVELOPE
    assert parked.envelope_of(message) == replace(ENVELOPE, rcpt_tos=("other@test.com",))


def test_envelope_of_a_message_without_one_is_made_from_from_and_to() -> None:
    made = parked.envelope_of(MailRequest("p", "Joe <a@example.org>", "help@test.com", MESSAGE))
    assert made is not None
    assert (made.mail_from, made.rcpt_tos, made.peer, made.queue) == ("a@example.org", ("help@test.com",), "p",
                                                                       "incoming")
    raw = parked.envelope_of(MESSAGE)
    assert raw is not None and raw.rcpt_tos == ("help@test.com", "other@test.com")
    assert parked.envelope_of(b"Subject: nobody\r\n\r\nx\r\n") is None


def test_a_maildir_queue_message_records_its_folder_absolute(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = Envelope("a@example.org", ("help@test.com",), peer="run/posts", queue="q-posts", extra={"plain": "1"})
    found = parked.read(parked.record(env, "x", MESSAGE))
    assert found.envelope is not None and found.envelope.extra[parked.QUEUE_DIR] == str(tmp_path / "run" / "posts")


def test_router_park_writes_the_record_into_a_1x_queue(tmp_path: Path) -> None:
    with router_snapshot():
        Router.UNDELIVERABLE_QUEUE = Queue(tmp_path / "u")
        message = MailRequest("p", "a@example.org", "help@test.com", MESSAGE)
        message.envelope = ENVELOPE
        key = Router.park(message, "no route matched in the current state")
        assert key is not None
        found = parked.read(Router.UNDELIVERABLE_QUEUE.get_bytes(key))
    assert found.envelope == replace(ENVELOPE, rcpt_tos=("help@test.com",))
    assert (found.reason, found.message) == ("no route matched in the current state", MESSAGE)


# -- the bug: a message the Router parked goes back to the group it came from -------------------------


@pytest.fixture
def ctx(tmp_path: Path, redis_conn: redis.Redis) -> Iterator[Runtime]:
    """A router worker's runtime on a real Redis, routing with tests/workers/lifecycle_handlers."""
    handlers.CALLS.clear()
    handlers.FAIL.clear()
    with router_runtime(tmp_path, redis_conn, ["tests.workers.lifecycle_handlers"], namespace="parked",
                        worker_id="t.router.h.1.me", route_retries=[30], max_attempts=3) as runtime:
        yield runtime
    handlers.FAIL.clear()


def test_a_message_parked_while_routed_from_a_deferred_group_is_requeued_to_that_group(
        ctx: Runtime, tmp_path: Path) -> None:
    data = b"From: a@example.org\r\nTo: bot@test.com\r\nSubject: bad\r\n\r\nhi\r\n"
    posts = ctx.spool("posts")  # what lamson.router.defer(message, "posts") writes to
    key = posts.put(Envelope("a@example.org", ("bot@test.com",), queue="posts", extra={"deferred": "1"}), data)
    ctx.lines("posts").add([(key, "a@example.org")])
    handlers.FAIL.add("bad")

    assert jobs.route(ctx, [key], "posts") == "1 parked"  # the handler raised: the Router parked it
    (kept,) = maildir_files(tmp_path / "undeliverable")
    found = parked.read(kept.read_bytes())
    assert found.envelope is not None and found.envelope.queue == "posts"
    assert found.reason == "tests.workers.lifecycle_handlers.START raised RuntimeError: handler fails on bad"
    assert posts.waiting() == [] and posts.claims() == []

    handlers.FAIL.clear()  # fixed
    new_key = requeue(kept.read_bytes(), ctx.settings, ctx.conn)
    assert posts.waiting() == [new_key] and ctx.spool("incoming").waiting() == []
    again = posts.get(new_key)
    assert again is not None and again.data == data
    assert (again.envelope.queue, again.envelope.rcpt_tos, again.envelope.attempts) == ("posts", ("bot@test.com",), 0)
    assert rqcompat.length(ctx.conn, ctx.names.queue("posts")) == 1
    assert rqcompat.length(ctx.conn, ctx.names.incoming) == 0
    assert Lines(ctx.conn, ctx.names, "posts").heads(["a@example.org"]) == [new_key]

    assert jobs.route(ctx, [new_key], "posts") == "1 routed"  # and the posts workers route it this time
    assert handlers.CALLS == ["bad", "bad"]


def test_a_message_parked_from_a_maildir_queue_goes_back_into_that_folder(
        ctx: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "app"
    work.mkdir()
    monkeypatch.chdir(work)  # the worker's directory: the QueueReceiver was given a relative folder
    receiver = QueueReceiver("run/posts", sleep=1)
    ctx.spools[receiver.group] = receiver.spool(ctx.config)  # what lamson.workers.queue_receiver.serve does
    announce(ctx.conn, ctx.names, receiver.group)
    Queue("run/posts").push(b"From: a@example.org\r\nTo: bot@test.com, help@test.com\r\nSubject: bad\r\n\r\nhi\r\n")
    handlers.FAIL.add("bad")
    assert jobs.route(ctx, [], receiver.group) == "1 parked"  # parked for both recipients: two records
    records = [parked.read(p.read_bytes()) for p in maildir_files(tmp_path / "undeliverable")]
    assert sorted(r.envelope.rcpt_tos for r in records if r.envelope is not None) == [("bot@test.com",),
                                                                                      ("help@test.com",)]

    monkeypatch.chdir(tmp_path)  # `lamson queue -requeue` run from elsewhere
    handlers.FAIL.clear()
    kept = next(p for p in maildir_files(tmp_path / "undeliverable") if b"bot@test.com\"]" in p.read_bytes())
    woken = rqcompat.length(ctx.conn, ctx.names.queue(receiver.group))  # the push's wake-up is still there
    new_key = requeue(kept.read_bytes(), ctx.settings, ctx.conn)
    assert [p.name for p in maildir_files(work / "run" / "posts")] == [new_key]
    assert not (tmp_path / "spool" / ".q-posts").exists()  # not a folder made up under spool_dir
    assert rqcompat.length(ctx.conn, ctx.names.queue(receiver.group)) == woken + 1  # its receiver is announced
    again = MaildirSpool(work / "run" / "posts", group=receiver.group, plain=True).get(new_key)
    assert again is not None and again.envelope.rcpt_tos == ("bot@test.com",)  # only whom it was parked for
    monkeypatch.chdir(work)
    assert jobs.route(ctx, [new_key], receiver.group) == "1 routed"
    assert handlers.CALLS == ["bad", "bad", "bad"]
