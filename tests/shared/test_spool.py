"""The spool's durability protocol and the sweeper, against a real Redis."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis
from rq import Queue

from lamson import maildir, queues
from lamson.envelope import Envelope, UnknownSchema
from lamson.spool import MaildirSpool, RedisSpool, decode
from lamson.workers.sweeper import sweep

MESSAGE = b"From: a@example.org\r\nTo: b@test.com\r\nSubject: hi\r\n\r\nbody\r\n"


def env(**kw: object) -> Envelope:
    return Envelope(
        mail_from="a@example.org", rcpt_tos=("b@test.com", "c@test.com"), peer="127.0.0.1:1", **kw
    )


@pytest.fixture(params=["maildir", "redis"])
def spool(request: pytest.FixtureRequest, tmp_path: Path, redis_conn: redis.Redis):
    return MaildirSpool(tmp_path / "spool") if request.param == "maildir" else RedisSpool(redis_conn)


def test_put_get_remove_round_trip(spool) -> None:
    e = env()
    key = spool.put(e, MESSAGE)
    got = spool.get(key)
    assert got is not None and got.data == MESSAGE and got.envelope == e
    assert spool.keys() == [key]
    spool.remove(key)
    assert spool.get(key) is None and spool.keys() == []
    spool.remove(key)  # removing twice is harmless: a job that ran twice


def test_maildir_message_is_visible_only_when_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    seen_during_write: list[list[str]] = []
    real_fsync = os.fsync

    def spying_fsync(fd: int) -> None:
        seen_during_write.append(sorted(os.listdir(tmp_path / "spool" / "new")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spying_fsync)
    key = spool.put(env(), MESSAGE)
    # While the file was being synced, new/ did not have it yet; afterwards it is there, whole.
    assert seen_during_write[0] == []
    assert os.listdir(tmp_path / "spool" / "tmp") == []
    assert decode(key, (tmp_path / "spool" / "new" / key).read_bytes()).data == MESSAGE


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = MaildirSpool(tmp_path / "spool")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        spool.put(env(), MESSAGE)
    assert os.listdir(tmp_path / "spool" / "tmp") == [] and os.listdir(tmp_path / "spool" / "new") == []


def test_unknown_schema_is_refused(tmp_path: Path) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    key = maildir.write(spool.path, b'{"v":99,"mail_from":""}\nrest')
    with pytest.raises(UnknownSchema):
        spool.get(key)


def test_stale_tmp_files_are_cleaned(tmp_path: Path) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    stale = spool.path / "tmp" / "123.dead-writer"
    stale.write_bytes(b"half a mess")
    old = time.time() - 2 * spool.STALE_TMP
    os.utime(stale, (old, old))
    fresh = spool.path / "tmp" / "456.writing-now"
    fresh.write_bytes(b"in progress")
    assert spool.cleanup() == 1
    assert not stale.exists() and fresh.exists()


def test_sweeper_enqueues_only_orphans(spool, redis_conn: redis.Redis) -> None:
    with_job = spool.put(env(), MESSAGE)
    queues.enqueue_route(redis_conn, with_job)
    orphans = {spool.put(env(), MESSAGE), spool.put(env(queue="posts"), MESSAGE)}

    assert sweep(spool, redis_conn, grace=0, timeout=30, retries=[1]) == 2
    incoming = Queue(queues.INCOMING, connection=redis_conn).job_ids
    posts = Queue("posts", connection=redis_conn).job_ids
    assert sorted(incoming + posts) == sorted(queues.route_job_id(k) for k in orphans | {with_job})
    assert len(posts) == 1  # the envelope names the queue a deferred message goes back to
    # Nothing duplicated: a second pass finds every message with a live job.
    assert sweep(spool, redis_conn, grace=0, timeout=30, retries=[1]) == 0
    assert len(Queue(queues.INCOMING, connection=redis_conn)) == 2


def test_sweeper_leaves_fresh_messages_to_the_receiver(spool, redis_conn: redis.Redis) -> None:
    spool.put(env(), MESSAGE)
    assert sweep(spool, redis_conn, grace=60, timeout=30, retries=[1]) == 0


def test_only_one_sweep_at_a_time(spool, redis_conn: redis.Redis) -> None:
    spool.put(env(), MESSAGE)
    held = redis_conn.lock("lamson:sweeper", timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert sweep(spool, redis_conn, grace=0, timeout=30, retries=[1]) == 0
    finally:
        held.release()
    assert sweep(spool, redis_conn, grace=0, timeout=30, retries=[1]) == 1


def test_maildir_keys_are_checked(tmp_path: Path) -> None:
    root = maildir.ensure(tmp_path / "q")
    for bad in ["../../etc/passwd", "/etc/passwd", "a\x00b", ".hidden", "", "a/b"]:
        with pytest.raises(maildir.BadKey):
            maildir.locate(root, bad)
    outside = tmp_path / "secret"
    outside.write_text("x")
    (root / "new" / "link").symlink_to(outside)
    with pytest.raises(maildir.BadKey):
        maildir.locate(root, "link")


def test_a_symlinked_maildir_folder_is_refused(tmp_path: Path) -> None:
    """new/ itself pointing elsewhere must not let keys/pop/get read (and delete) outside files."""
    from lamson.queue import Queue

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "1.A.b").write_text("secret")
    root = tmp_path / "q"
    maildir.ensure(root)
    (root / "new").rmdir()
    (root / "new").symlink_to(outside)
    queue = Queue(root)
    for action in (queue.keys, queue.pop, lambda: queue.get("1.A.b")):
        with pytest.raises(maildir.BadKey):
            action()
    assert (outside / "1.A.b").read_text() == "secret"
