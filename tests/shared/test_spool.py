"""The spool's lifecycle, for both kinds: put, claim, finish, release, park, recover."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from lamson import maildir
from lamson.envelope import Envelope, UnknownSchema
from lamson.names import Names
from lamson.parked import read
from lamson.spool import Claim, MaildirSpool, RedisSpool, UnreadableRecord, decode, key_time

DATA = b"From: a@example.org\r\nTo: b@test.com\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture(params=["maildir", "redis"])
def spool(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "maildir":
        return MaildirSpool(tmp_path / "spool", parked=tmp_path / "parked")
    conn = request.getfixturevalue("redis_conn")
    return RedisSpool(conn, Names("t1"), parked=tmp_path / "parked")


def env(sender: str = "a@example.org") -> Envelope:
    return Envelope(sender, ("b@test.com",), peer="127.0.0.1:1")


def test_put_claim_finish(spool) -> None:
    key = spool.put(env(), DATA)
    assert spool.where(key) == "waiting" and spool.waiting() == [key]
    got = spool.claim(key, "w1")
    assert got is not None and got.data == DATA and got.envelope.mail_from == "a@example.org"
    assert spool.where(key) == "claimed" and spool.waiting() == []
    assert [(c.key, c.worker) for c in spool.claims()] == [(key, "w1")]
    assert spool.claim(key, "w2") is None  # exactly one worker gets it
    assert spool.get(key) is not None  # readable while in flight
    assert spool.finish(key, "w1")
    assert spool.where(key) is None and spool.get(key) is None and spool.claims() == []
    assert not spool.finish(key, "w1")


def test_release_waits_until_due_and_rewrites_the_envelope(spool) -> None:
    key = spool.put(env(), DATA)
    got = spool.claim(key, "w1")
    assert spool.release(got, "w1", delay=30, envelope=replace(got.envelope, attempts=2))
    assert spool.where(key) == "waiting"
    assert spool.waiting() == [key] and spool.waiting(due=True) == []
    assert spool.claim_waiting("w2", 10) == []  # not due yet
    again = spool.claim(key, "w2")  # a wake-up naming it may still take it
    assert again is not None and again.envelope.attempts == 2 and again.data == DATA


def test_only_the_holder_finishes_or_releases(spool) -> None:
    key = spool.put(env(), DATA)
    got = spool.claim(key, "w1")
    assert not spool.finish(key, "w2")
    assert not spool.release(got, "w2")
    assert spool.where(key) == "claimed"


def test_claim_waiting_takes_the_oldest_due(spool) -> None:
    keys = [spool.put(env(), DATA + str(i).encode()) for i in range(5)]
    taken = spool.claim_waiting("w1", 3)
    assert [s.key for s in taken] == keys[:3]
    assert spool.waiting() == keys[3:]


def test_park_keeps_envelope_and_reason_for_requeue(spool, tmp_path: Path) -> None:
    key = spool.put(env(), DATA)
    got = spool.claim(key, "w1")
    parked = spool.park(got, "w1", "handler blew up\r\nX-Injected: no")
    assert spool.where(key) is None
    raw = (tmp_path / "parked" / "new" / parked).read_bytes()
    assert b"X-Lamson-Reason: handler blew up X-Injected: no\r\n" in raw
    found = read(raw)
    assert found.message == DATA and found.envelope == got.envelope  # all of it: group, id, attempts
    assert found.reason == "handler blew up X-Injected: no"


def test_an_unreadable_record_is_parked_byte_for_byte(spool, tmp_path: Path) -> None:
    key = spool.put(env(), DATA)
    if isinstance(spool, MaildirSpool):
        (tmp_path / "spool" / "new" / key).write_bytes(b'{"v":99}\n' + DATA)
    else:
        spool.conn.hset(Names("t1").key("spool", "incoming", "msg") + ":" + key, "envelope", b'{"v":99}')
    with pytest.raises(UnreadableRecord):
        spool.claim(key, "w1")
    kept = spool.park_unreadable(key, "w1", "unreadable spool record: UnknownSchema")
    assert kept is not None and spool.where(key) is None
    found = read((tmp_path / "parked" / "new" / kept).read_bytes())
    assert (found.envelope, found.reason, found.message) == (None, "unreadable spool record: UnknownSchema",
                                                             b'{"v":99}\n' + DATA)


def test_recover_returns_dead_claims_with_one_more_attempt(spool) -> None:
    a, b = spool.put(env(), DATA), spool.put(env(), DATA)
    spool.claim(a, "dead")
    spool.claim(b, "alive")
    assert spool.recover(lambda c: c.worker == "dead") == [a]
    assert spool.where(a) == "waiting" and spool.where(b) == "claimed"
    again = spool.claim(a, "w3")
    assert again.envelope.attempts == 1


def test_group_commit_of_unsynced_puts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = MaildirSpool(tmp_path / "outbox", group="outgoing")
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    keys = [spool.put(env(), DATA, sync=False) for _ in range(3)]
    assert synced == []  # nothing fsynced yet: the batch commits at once
    spool.commit(keys)
    assert len(synced) == 4  # three files, then the directory once


def test_maildir_layout_tells_waiting_from_in_flight(tmp_path: Path) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    waiting, flying = spool.put(env(), DATA), spool.put(env(), DATA)
    spool.claim(flying, "lamson.router.web1.42.abc")
    assert os.listdir(tmp_path / "spool" / "new") == [waiting]
    assert os.listdir(tmp_path / "spool" / "cur") == [f"{flying},lamson.router.web1.42.abc"]


def test_release_delay_is_the_file_time(tmp_path: Path) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    key = spool.put(env(), DATA, delay=60)
    assert os.stat(tmp_path / "spool" / "new" / key).st_mtime > time.time() + 50
    assert spool.waiting(due=True) == [] and spool.waiting() == [key]


def test_maildir_message_is_visible_only_when_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    seen: list[list[str]] = []
    real_rename = os.rename

    def spy(src, dst):  # type: ignore[no-untyped-def]
        seen.append(os.listdir(tmp_path / "spool" / "new"))
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", spy)
    key = spool.put(env(), DATA)
    assert seen == [[]] and spool.waiting() == [key]


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = MaildirSpool(tmp_path / "spool")

    def boom(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        spool.put(env(), DATA)
    assert os.listdir(tmp_path / "spool" / "tmp") == [] and spool.waiting() == []


def test_unknown_schema_is_refused_and_schema_1_is_read() -> None:
    with pytest.raises(UnknownSchema):
        decode("k", b'{"v":99,"mail_from":"","rcpt_tos":[]}\nbody')
    old = decode("k", b'{"v":1,"mail_from":"a@b","rcpt_tos":["c@d"],"peer":"","helo":"","id":"X",'
                      b'"received_at":1.0,"queue":"lamson-incoming","extra":{}}\nbody')
    assert old.envelope.queue == "incoming" and old.envelope.attempts == 0 and old.data == b"body"


def test_stale_tmp_files_are_cleaned(tmp_path: Path) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    stale = tmp_path / "spool" / "tmp" / "1.M1P1Q1.otherhost"
    stale.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert spool.cleanup() == 1 and not stale.exists()


def test_keys_are_checked(tmp_path: Path) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    for bad in ("../x", "a/b", "", ".hidden", "x\x00y"):
        with pytest.raises(maildir.BadKey):
            spool.claim(bad, "w")


def test_key_time_orders_by_acceptance() -> None:
    a, b = maildir.new_key(), maildir.new_key()
    assert key_time(a) <= key_time(b) and abs(key_time(a) - time.time()) < 5
    assert key_time("garbage") == 0.0


def test_two_namespaces_never_see_each_others_redis_spool(redis_conn: redis.Redis, tmp_path: Path) -> None:
    one, two = RedisSpool(redis_conn, Names("one")), RedisSpool(redis_conn, Names("two"))
    key = one.put(env(), DATA)
    assert two.waiting() == [] and two.claim(key, "w") is None and two.get(key) is None
    assert one.claim(key, "w") is not None


def test_claims_report_when_they_were_taken(spool) -> None:
    key = spool.put(env(), DATA)
    before = time.time()
    spool.claim(key, "w1")
    (claim,) = spool.claims()
    assert isinstance(claim, Claim) and claim.since >= before - 2


def test_keys_sort_by_the_time_in_their_names(tmp_path: Path) -> None:
    """Microseconds compare as numbers (other writers do not pad them), and new names are padded."""
    from lamson import maildir

    root = maildir.ensure(tmp_path / "md")
    names = ["1796034845.M10155P1Q15.host", "1796034845.M8640P1Q12.host", "1796034844.M999999P1Q2.host",
             "1796034845.M10155P1Q9.host", "1796034845.M10155P1Q10.host"]
    for name in names:
        (root / "new" / name).write_bytes(b"x")
    assert maildir.keys(root) == ["1796034844.M999999P1Q2.host", "1796034845.M8640P1Q12.host",
                                  "1796034845.M10155P1Q9.host", "1796034845.M10155P1Q10.host",
                                  "1796034845.M10155P1Q15.host"]
    made = [maildir.new_key() for _ in range(50)]
    assert all(len(key.split(".M", 1)[1].split("P", 1)[0]) == 6 for key in made)
    assert sorted(made, key=maildir.key_order) == made  # made one after another: already in time order


def test_envelope_json_has_every_field_and_reads_back() -> None:
    """to_json is written field by field for speed: it must still carry every field, and only copies."""
    import dataclasses
    import json

    extra = {"protocol": "ESMTP", "auth": "ann"}
    env = Envelope(mail_from="a@x.org", rcpt_tos=("b@y.org", "c@y.org"), peer="1.2.3.4:5", helo="mx.x.org",
                   queue="posts", extra=extra, attempts=2)
    record = json.loads(env.to_json())
    assert set(record) == {"v"} | {f.name for f in dataclasses.fields(Envelope)}
    assert record["rcpt_tos"] == ["b@y.org", "c@y.org"] and record["v"] == 2
    assert Envelope.from_json(env.to_json()) == env
