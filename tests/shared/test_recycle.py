"""Spool files used again (lamson.recycle): the same inode, nothing of the old message left."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from lamson import recycle
from lamson.envelope import Envelope
from lamson.recycle import Recycler
from lamson.spool import MaildirSpool


def test_a_finished_file_is_written_again_for_the_next_message(tmp_path: Path) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    first = spool.put(Envelope("a@x.org", ("b@y.org",)), b"Subject: long\r\n\r\n" + b"x" * 5000 + b"\r\n")
    inode = os.stat(tmp_path / "spool" / "new" / first).st_ino
    assert spool.claim(first, "w1") is not None and spool.finish(first, "w1")
    assert os.listdir(tmp_path / "spool" / "free") == [first] and os.listdir(tmp_path / "spool" / "cur") == []
    assert not spool.finish(first, "w1")  # no longer ours: nothing to do

    other = MaildirSpool(tmp_path / "spool")  # another process (its own view of free/)
    second = other.put(Envelope("c@x.org", ("d@y.org",)), b"Subject: short\r\n\r\nhi\r\n")
    path = tmp_path / "spool" / "new" / second
    assert os.stat(path).st_ino == inode  # the same file...
    assert other.get(second).data == b"Subject: short\r\n\r\nhi\r\n"  # ...with nothing of the old one in it
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path / "spool" / "free") == [] and os.listdir(tmp_path / "spool" / "tmp") == []


def test_writers_sharing_free_files_never_get_the_same_one(tmp_path: Path) -> None:
    free = tmp_path / "m" / "free"
    (tmp_path / "m" / "tmp").mkdir(parents=True)
    recyclers = [Recycler(tmp_path / "m") for _ in range(4)]
    for n in range(200):
        (free / f"f{n}").write_bytes(b"old")
    taken: list[list[str]] = [[] for _ in recyclers]

    def take(index: int) -> None:
        for n in range(100):
            target = str(tmp_path / "m" / "tmp" / f"t{index}.{n}")
            if recyclers[index].take(target):
                taken[index].append(target)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(len(t) for t in taken) == 200  # every free file used once, by one writer
    assert len(os.listdir(tmp_path / "m" / "tmp")) == 200 and os.listdir(free) == []


def test_cleanup_keeps_at_most_the_limit(tmp_path: Path) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    for n in range(30):
        (tmp_path / "spool" / "free" / f"f{n}").write_bytes(b"old")
    assert recycle.trim(tmp_path / "spool", limit=10) == 20
    assert len(os.listdir(tmp_path / "spool" / "free")) == 10
    spool.cleanup()  # with the default limit: nothing more to remove
    assert len(os.listdir(tmp_path / "spool" / "free")) == 10


def test_files_kept_ready_at_start_are_topped_up_and_used(tmp_path: Path) -> None:
    from types import SimpleNamespace

    spool = MaildirSpool(tmp_path / "spool")
    recycle.reserve_files(spool, SimpleNamespace(spool_reserve=5))
    free = tmp_path / "spool" / "free"
    ready = {os.stat(free / name).st_ino for name in os.listdir(free)}
    assert len(ready) == 5 and all(os.path.getsize(free / name) == 0 for name in os.listdir(free))
    key = spool.put(Envelope("a@x.org", ("b@y.org",)), b"Subject: hi\r\n\r\nhi\r\n")
    assert os.stat(tmp_path / "spool" / "new" / key).st_ino in ready  # no new inode for the message
    assert spool.reserve(5) == 1 and len(os.listdir(free)) == 5  # topped up, not doubled
    recycle.reserve_files(spool, SimpleNamespace(spool_reserve=0))  # 0: none kept
    assert len(os.listdir(free)) == 5


def test_a_plain_maildir_queue_keeps_no_free_files(tmp_path: Path) -> None:
    """A QueueReceiver's Maildir is written by other programs: what it finishes is deleted, as before."""
    queue = MaildirSpool(tmp_path / "queue", group="q-x", plain=True)
    key = queue.put(Envelope("a@x.org", ("b@y.org",)), b"Subject: hi\r\n\r\nhi\r\n")
    assert queue.claim(key, "w1") is not None and queue.finish(key, "w1")
    assert not queue.finish(key, "w1")
    assert sorted(os.listdir(tmp_path / "queue")) == ["cur", "new", "tmp"]
    assert os.listdir(tmp_path / "queue" / "cur") == [] and queue.reserve(5) == 0
