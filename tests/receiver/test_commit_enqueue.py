"""The receiver's group commit and its batched wake-ups, against a real Maildir and a real Redis."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
import redis

from lamson import queues, rqcompat
from lamson.envelope import Envelope
from lamson.names import Names
from lamson.order import Lines
from lamson.receiver.commit import GroupCommit
from lamson.receiver.enqueue import Enqueuer
from lamson.spool import MaildirSpool


class CountingSpool(MaildirSpool):
    """The real Maildir spool, counting group commits; ``fail_commit``/``fail_put`` make them fail."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.commits: list[list[str]] = []
        self.fail_commit = False
        self.fail_put = b""
        self.gate = threading.Event()
        self.gate.set()

    def put(self, envelope: Envelope, data: bytes, *, sync: bool = True, delay: float = 0.0) -> str:
        self.gate.wait(10)
        if self.fail_put and self.fail_put in data:
            raise OSError(28, "No space left on device")
        return super().put(envelope, data, sync=sync, delay=delay)

    def commit(self, keys):  # type: ignore[no-untyped-def]
        keys = list(keys)
        self.commits.append(keys)
        if self.fail_commit:
            raise OSError(5, "Input/output error")
        super().commit(keys)


def envelope(n: int) -> Envelope:
    return Envelope(f"s{n}@example.org", ("bot@test.com",))


def test_messages_waiting_together_share_one_commit(tmp_path: Path) -> None:
    spool = CountingSpool(tmp_path / "spool")
    enqueued: list[tuple[str, str]] = []
    committer = GroupCommit(spool, lambda key, sender: enqueued.append((key, sender)) is None)
    try:
        spool.gate.clear()  # the thread is held at its first write while the rest arrive
        futures = [committer.submit(envelope(n), b"Subject: %d\r\n\r\nhi\r\n" % n) for n in range(6)]
        time.sleep(0.2)
        spool.gate.set()
        results = [f.result(10) for f in futures]
    finally:
        committer.close()
    # What was there when the thread came round, then everything that arrived while it wrote: two commits.
    assert len(spool.commits) <= 2 and sum(len(keys) for keys in spool.commits) == 6
    assert sorted(spool.waiting()) == sorted(key for key, _ in results)
    assert all(queued for _, queued in results)
    assert [sender for _, sender in enqueued] == [f"s{n}@example.org" for n in range(6)]  # enqueued in order


def test_a_failed_write_fails_alone_and_a_failed_commit_takes_its_group_back(tmp_path: Path) -> None:
    spool = CountingSpool(tmp_path / "spool")
    committer = GroupCommit(spool, lambda key, sender: True)
    try:
        spool.fail_put = b"FULL"
        spool.gate.clear()
        futures: list[Future[tuple[str, bool]]] = [
            committer.submit(envelope(0), b"Subject: a\r\n\r\nhi\r\n"),
            committer.submit(envelope(1), b"Subject: FULL\r\n\r\nhi\r\n"),
            committer.submit(envelope(2), b"Subject: b\r\n\r\nhi\r\n"),
        ]
        spool.gate.set()
        with pytest.raises(OSError, match="No space"):
            futures[1].result(10)
        assert futures[0].result(10)[0] in spool.waiting() and futures[2].result(10)[0] in spool.waiting()

        spool.fail_commit = True
        failed = [committer.submit(envelope(n), b"Subject: c\r\n\r\nhi\r\n") for n in range(3)]
        for future in failed:
            with pytest.raises(OSError, match="Input/output"):
                future.result(10)
    finally:
        committer.close()
    # The sessions answered 451, so their clients send again: nothing of theirs may stay behind.
    assert sorted(spool.waiting()) == sorted([futures[0].result()[0], futures[2].result()[0]])
    assert spool.claims() == [] and list((tmp_path / "spool" / "tmp").iterdir()) == []


def test_keys_arriving_together_get_one_wake_up_and_join_their_lines(redis_conn: redis.Redis) -> None:
    names = Names("t")
    enqueuer = Enqueuer(redis_conn, names, timeout=45, window=0.2)
    try:
        for n in range(5):
            enqueuer(f"{1700000000 + n}.M000001P1Q{n}.h", f"s{n % 2}@example.org")
        deadline = time.monotonic() + 10
        while rqcompat.length(redis_conn, names.incoming) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        enqueuer.close()
    (job,) = rqcompat.queue(redis_conn, names.incoming).jobs
    assert job.func_name == queues.ROUTE_JOB and len(job.args[0]) == 5
    assert job.args[2] == [f"s{n % 2}@example.org" for n in range(5)]  # each key's sender rides along
    lines = Lines(redis_conn, names)
    assert lines.head("s0@example.org") == "1700000000.M000001P1Q0.h"
    assert lines.head("s1@example.org") == "1700000001.M000001P1Q1.h"


def test_while_a_wake_up_still_waits_the_next_batch_grows(redis_conn: redis.Redis) -> None:
    """Every router busy (a wake-up waits in the queue): more keys ride on one wake-up than ``batch``."""
    names = Names("t")
    queues.wake_router(redis_conn, names, "incoming", ["1600000000.M000001P1Q0.h"])  # nobody took it yet
    enqueuer = Enqueuer(redis_conn, names, timeout=45, window=0.01, batch=4, busy_window=1.0, busy_batch=50)
    try:
        for n in range(30):
            enqueuer(f"{1700000000 + n}.M000001P1Q{n}.h", "a@example.org")
            time.sleep(0.005)
        deadline = time.monotonic() + 10
        while rqcompat.length(redis_conn, names.incoming) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        enqueuer.close()
    sizes = [len(job.args[0]) for job in rqcompat.queue(redis_conn, names.incoming).jobs]
    assert sizes == [1, 30]  # the waiting one, then all thirty together, though batch is 4
