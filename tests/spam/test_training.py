"""``lamson spam -train-*`` streams its files and is all or nothing (issue 21, finding 10).

Before: a 2 GB file took 2.1 GB of memory, and a killed run kept half its messages. Here: the
splitting is :class:`mailbox.mbox`'s, a run's counts are those of training message by message,
a large mbox costs little memory (peak RSS of the real command, from ``wait4``), and a run killed
halfway (SIGKILL) or interrupted (SIGINT) leaves the filter exactly as it was.
"""

from __future__ import annotations

import mailbox
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from lamson.names import Names
from lamson.spam import Filter
from lamson.spam.store import MemoryStore, RedisStore
from lamson.spam.training import TrainingRun, mbox_messages, read_messages
from tests.cli.conftest import base_env
from tests.spam.corpus import NEW_HAM, NEW_SPAM
from tests.spam.test_cli import write_mbox
from tests.support import BIN, wait_for

MIB = 1024 * 1024


def message(n: int, body: str = "") -> bytes:
    return (f"From: sender{n}@example.org\nTo: someone@test.com\nSubject: message number {n}\n\n"
            f"Words unique{n} common words here {body}\n").encode()





def test_mbox_split_as_mailbox_splits_it(tmp_path: Path) -> None:
    tricky = [message(1), b"Subject: two\n\nFrom here on\n>From quoted\n\n\nend\n", b"Subject: three\n\nno newline",
              NEW_SPAM, NEW_HAM, b"Subject: empty body\n\n"]
    path = write_mbox(tmp_path / "box", tricky)
    with path.open("rb") as handle:
        ours = list(mbox_messages(handle, 10 * MIB))
    box = mailbox.mbox(path, create=False)
    theirs = [box.get_bytes(key) for key in box.iterkeys()]
    box.close()
    assert ours == theirs
    with path.open("rb") as handle:
        cut = list(mbox_messages(handle, 20))
    assert cut == [m[:20] for m in theirs]


def test_read_messages_cuts_files_and_says_when_nothing_is_there(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "a").write_bytes(b"x" * 1000)
    (folder / ".hidden").write_bytes(b"y")
    assert list(read_messages(folder, 100)) == [b"x" * 100]
    with pytest.raises(FileNotFoundError):
        list(read_messages(tmp_path / "missing", 100))


def sample() -> list[bytes]:
    return [message(n, "spammy offer" if n % 2 else "meeting notes") for n in range(120)]


def hashes(conn: redis.Redis, store: RedisStore) -> tuple[dict[Any, Any], ...]:
    return conn.hgetall(store.spam_key), conn.hgetall(store.ham_key), conn.hgetall(store.meta_key)


def test_a_run_counts_what_message_by_message_training_counts(redis_conn: redis.Redis) -> None:
    spam = Filter("run/spamdb", redis=redis_conn, names=Names("one"))
    by_message = Filter("run/spamdb", redis=redis_conn, names=Names("two"))
    data = sample()
    for m in data[:10]:  # something trained before, for the untraining to take away from
        spam.train_ham(m)
        by_message.train_ham(m)
    with TrainingRun(spam.store) as run:
        for m in data:
            run.add("train-spam", spam.tokens(m))
        for m in data[:15]:
            run.add("untrain-ham", spam.tokens(m))  # five more than were trained: counts stop at zero
    for m in data:
        by_message.train_spam(m)
    for m in data[:15]:
        by_message.untrain_ham(m)
    assert hashes(redis_conn, spam.store) == hashes(redis_conn, by_message.store)  # type: ignore[arg-type]
    assert not redis_conn.keys("one:spam:*:run:*")  # the staging is gone


def test_a_run_left_by_an_exception_changes_nothing(redis_conn: redis.Redis) -> None:
    spam = Filter("run/spamdb", redis=redis_conn, names=Names("one"))
    spam.train_ham(NEW_HAM)
    before = hashes(redis_conn, spam.store)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError), TrainingRun(spam.store) as run:
        for m in sample():
            run.add("train-spam", spam.tokens(m))
        raise RuntimeError("interrupted")
    assert hashes(redis_conn, spam.store) == before  # type: ignore[arg-type]
    assert not redis_conn.keys("one:spam:*:run:*")


def test_memory_store_run_is_all_or_nothing_too() -> None:
    store = MemoryStore("x")
    with pytest.raises(RuntimeError), TrainingRun(store) as run:
        run.add("train-spam", ["a", "b"])
        raise RuntimeError("interrupted")
    assert store.stats().nspam == 0
    with TrainingRun(store) as run:
        run.add("train-spam", ["a", "b"])
        run.add("untrain-spam", ["a"])
    assert store.counts(["a", "b"]).spam == [0, 1] and store.stats().nspam == 0


# -- the real command -------------------------------------------------------------------------------------


def spawn_spam(tmp_path: Path, redis_url: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(BIN / "lamson"), "spam", "-redis", redis_url, *args], cwd=tmp_path,
                            env={**os.environ, **base_env(tmp_path)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def peak_rss(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, int]:
    """Exit status and peak RSS (bytes) of ``proc``, from wait4 (this child's own, not all children's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss * 1024
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("lamson spam did not finish in time")


def test_a_large_mbox_is_trained_in_bounded_memory(tmp_path: Path, redis_url: str, redis_conn: redis.Redis) -> None:
    """A 200 MB mbox (four 50 MB messages among small ones): RSS grows less than 80 MB over a tiny run
    (the brief's bound, 200 MB for 500 MB, scaled down). Before, the whole file was in memory."""
    small = write_mbox(tmp_path / "small.mbox", [message(n) for n in range(5)])
    big = tmp_path / "big.mbox"
    line = b"filler words for a very long message body that nobody reads beyond its start\n"
    with big.open("wb") as out:
        for n in range(4):
            out.write(b"From sender@example.org Mon Dec  7 00:00:00 2026\n" + message(n) + b"\n")
            out.write(b"From big@example.org Mon Dec  7 00:00:00 2026\nSubject: huge\n\n")
            for _ in range(50 * MIB // len(line)):
                out.write(line)
            out.write(b"\n")
    assert big.stat().st_size > 200 * MIB
    code, baseline = peak_rss(spawn_spam(tmp_path, redis_url, "-train-spam", str(small)), 120)
    assert code == 0
    proc = spawn_spam(tmp_path, redis_url, "-train-ham", str(big))
    code, peak = peak_rss(proc, 300)
    assert code == 0, proc.stderr.read() if proc.stderr else ""
    assert redis_conn.hget("lamson:spam:run/spamdb:meta", "nham") == b"8"
    assert peak - baseline < 80 * MIB, (peak / MIB, baseline / MIB)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["killed", "interrupted"])
def test_a_run_stopped_halfway_leaves_the_filter_as_it_was(tmp_path: Path, redis_url: str,
                                                           redis_conn: redis.Redis, how: int) -> None:
    spam = Filter("run/spamdb", redis=redis_conn, names=Names("lamson"))
    spam.train_ham(NEW_HAM)
    before = hashes(redis_conn, spam.store)  # type: ignore[arg-type]
    box = write_mbox(tmp_path / "many.mbox", [message(n, "x" * (n % 50)) for n in range(6000)])
    proc = spawn_spam(tmp_path, redis_url, "-train-spam", str(box))
    try:
        wait_for(lambda: redis_conn.keys("lamson:spam:*:run:*"), 60, what="the run's first staged batch")
        assert proc.poll() is None, "the run ended before it could be stopped: give it more messages"
        proc.send_signal(how)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode != 0
    assert hashes(redis_conn, spam.store) == before  # type: ignore[arg-type]
    staging = redis_conn.keys("lamson:spam:*:run:*")
    if how == signal.SIGINT:
        assert not staging  # cleaned up on the way out
    else:
        assert staging and all(0 < redis_conn.ttl(k) <= 3600 for k in staging)  # gone within the hour
