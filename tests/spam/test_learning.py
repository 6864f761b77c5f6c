"""``lamson spam -learn-from``: folders of sorted mistakes learnt idempotently (issue 25).

Each message counts once however often the folders are learnt (a digest set in the store); a
message moved from ham to spam is unlearnt from ham and learnt as spam; a run killed halfway leaves
the counts and the digest set as they were; long runs print progress on stderr. The real command,
on a real Redis, against a filter trained message by message on what the folders hold.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import redis

from lamson import maildir
from lamson.names import Names
from lamson.spam import Filter, MemoryStore
from lamson.spam.learning import digest, learn_from
from lamson.spam.store import RedisStore
from tests.spam.test_cli import lamson, write_maildir, write_mbox
from tests.spam.test_training import message, spawn_spam
from tests.support import wait_for


def state(conn: redis.Redis, store: RedisStore) -> tuple[dict[Any, Any], ...]:
    """Everything the filter knows: both count hashes, the totals and the digest set."""
    return (conn.hgetall(store.spam_key), conn.hgetall(store.ham_key), conn.hgetall(store.meta_key),
            conn.hgetall(store.learnt_key))


def counts(conn: redis.Redis, store: RedisStore) -> tuple[dict[Any, Any], ...]:
    return state(conn, store)[:3]


def reference(conn: redis.Redis, namespace: str, spam: list[bytes], ham: list[bytes]) -> RedisStore:
    """A filter trained message by message on ``spam`` and ``ham``: what learning must amount to."""
    ref = Filter("run/spamdb", redis=conn, names=Names(namespace))
    for data in spam:
        ref.train_spam(data)
    for data in ham:
        ref.train_ham(data)
    store = ref.store
    assert isinstance(store, RedisStore)
    return store


def sorted_folders(root: Path, spam: list[bytes], ham: list[bytes]) -> Path:
    write_maildir(root / "spam", spam)
    write_maildir(root / "ham", ham)
    return root


def app_store(conn: redis.Redis) -> RedisStore:
    store = Filter("run/spamdb", redis=conn, names=Names("lamson")).store
    assert isinstance(store, RedisStore)
    return store


def spams(count: int) -> list[bytes]:
    return [message(n, "cheap offer winner prize") for n in range(count)]


def hams(count: int) -> list[bytes]:
    return [message(1000 + n, "meeting agenda patch review") for n in range(count)]


def test_learning_twice_counts_each_message_once(tmp_path: Path, redis_url: str, redis_conn: redis.Redis) -> None:
    spam, ham = spams(12), hams(9)
    folders = sorted_folders(tmp_path / "sorted", spam, ham)
    code, out, err = lamson("-redis", redis_url, "-learn-from", str(folders), cwd=tmp_path)
    assert code == 0, err
    assert f"learnt spam from {folders / 'spam'}: 12 read, 12 learnt, 0 moved from ham, 0 already known" in out
    assert f"learnt ham from {folders / 'ham'}: 9 read, 9 learnt, 0 moved from spam, 0 already known" in out
    store = app_store(redis_conn)
    first = state(redis_conn, store)
    assert counts(redis_conn, store) == counts(redis_conn, reference(redis_conn, "ref", spam, ham))
    assert len(first[3]) == 21 and set(first[3].values()) == {b"spam", b"ham"}

    code, out, err = lamson("-redis", redis_url, "-learn-from", str(folders), cwd=tmp_path)
    assert code == 0, err
    assert "12 read, 0 learnt, 0 moved from ham, 12 already known" in out
    assert state(redis_conn, store) == first

    # A new message among the old ones: only it is learnt.
    maildir.write(folders / "spam", message(77, "brand new offer"), sync=False)
    code, out, err = lamson("-redis", redis_url, "-learn-from", str(folders / "spam"), "-as", "spam", cwd=tmp_path)
    assert code == 0, err
    assert "13 read, 1 learnt, 0 moved from ham, 12 already known" in out
    assert counts(redis_conn, store) == counts(
        redis_conn, reference(redis_conn, "ref2", [*spam, message(77, "brand new offer")], ham))


def test_a_message_moved_from_ham_to_spam_is_unlearnt_from_ham(tmp_path: Path, redis_url: str,
                                                              redis_conn: redis.Redis) -> None:
    spam, ham = spams(5), hams(6)
    folders = sorted_folders(tmp_path / "sorted", spam, ham)
    code, _, err = lamson("-redis", redis_url, "-learn-from", str(folders), cwd=tmp_path)
    assert code == 0, err
    # The user moves two ham messages to spam, as a mail client does: new file name (flags), CRLF line ends.
    moved = sorted((folders / "ham" / "new").iterdir())[:2]
    moved_data = []
    for index, path in enumerate(moved):
        data = path.read_bytes()
        moved_data.append(data)
        (folders / "spam" / "cur" / f"moved{index}:2,S").write_bytes(data.replace(b"\n", b"\r\n"))
        path.unlink()
    code, out, err = lamson("-redis", redis_url, "-learn-from", str(folders), cwd=tmp_path)
    assert code == 0, err
    assert "spam from" in out and "7 read, 0 learnt, 2 moved from ham, 5 already known" in out
    assert "4 read, 0 learnt, 0 moved from spam, 4 already known" in out
    store = app_store(redis_conn)
    remaining = [data for data in ham if data not in moved_data]
    assert len(remaining) == 4
    assert counts(redis_conn, store) == counts(redis_conn, reference(redis_conn, "ref", [*spam, *moved_data],
                                                                     remaining))
    learnt = redis_conn.hgetall(store.learnt_key)
    assert all(learnt[digest(data).encode()] == b"spam" for data in moved_data)

    # And back again: from spam to ham.
    (folders / "spam" / "cur" / "moved0:2,S").rename(folders / "ham" / "cur" / "back:2,S")
    code, out, err = lamson("-redis", redis_url, "-learn-from", str(folders), cwd=tmp_path)
    assert code == 0, err
    assert "5 read, 0 learnt, 1 moved from spam, 4 already known" in out
    assert counts(redis_conn, store) == counts(
        redis_conn, reference(redis_conn, "ref2", [*spam, moved_data[1]], [*remaining, moved_data[0]]))


def test_a_run_killed_halfway_leaves_counts_and_digests_as_they_were(tmp_path: Path, redis_url: str,
                                                                     redis_conn: redis.Redis) -> None:
    folders = sorted_folders(tmp_path / "sorted", spams(3), hams(3))
    code, _, err = lamson("-redis", redis_url, "-learn-from", str(folders), cwd=tmp_path)
    assert code == 0, err
    store = app_store(redis_conn)
    before = state(redis_conn, store)
    assert len(before[3]) == 6
    box = write_mbox(tmp_path / "many.mbox", [message(n, "x" * (n % 50)) for n in range(6000)])
    proc = spawn_spam(tmp_path, redis_url, "-learn-from", str(box), "-as", "spam", "-progress", "0")
    try:
        wait_for(lambda: redis_conn.keys("lamson:spam:*:run:*:dg"), 60, what="the run's first staged digests")
        assert proc.poll() is None, "the run ended before it could be killed: give it more messages"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert state(redis_conn, store) == before
    staging = redis_conn.keys("lamson:spam:*:run:*")
    assert staging and all(0 < redis_conn.ttl(k) <= 3600 for k in staging)  # gone within the hour


def test_progress_lines_on_stderr(tmp_path: Path, redis_url: str, redis_conn: redis.Redis) -> None:
    folders = sorted_folders(tmp_path / "sorted", spams(25), hams(10))
    code, out, err = lamson("-redis", redis_url, "-learn-from", str(folders), "-progress", "10", cwd=tmp_path)
    assert code == 0, err
    lines = err.splitlines()
    assert [line.split(" messages read")[0] for line in lines] == [
        "learn-from: 10", "learn-from: 20", "learn-from: 30"], err
    assert "(spam: 20 learnt, 0 moved, 0 known)" in lines[1] and "(ham: 5 learnt" in lines[2]
    assert "learn-from" not in out
    code, _, err = lamson("-redis", redis_url, "-learn-from", str(folders), "-progress", "0", cwd=tmp_path)
    assert code == 0 and err == ""


def test_usage_and_missing_folders(tmp_path: Path, redis_url: str, redis_conn: redis.Redis) -> None:
    code, _, err = lamson("-redis", redis_url, "-as", "spam", cwd=tmp_path)
    assert code != 0 and "-as goes with -learn-from" in err
    (tmp_path / "empty").mkdir()
    code, _, err = lamson("-redis", redis_url, "-learn-from", str(tmp_path / "empty"), cwd=tmp_path)
    assert code == 1 and "neither a spam/ nor a ham/ folder" in err
    code, _, err = lamson("-redis", redis_url, "-learn-from", str(tmp_path / "empty"), "-train-spam",
                          str(tmp_path), cwd=tmp_path)
    assert code != 0 and "run of its own" in err


def test_in_memory_the_same_rules_apply(tmp_path: Path) -> None:
    """learn_from on a MemoryStore (an application's tests): once per message, moves, a message met
    twice in one run learnt once."""
    store = MemoryStore()
    spam = Filter("run/spamdb", store=store)
    folders = sorted_folders(tmp_path / "sorted", spams(4), [*hams(3), spams(1)[0]])  # one in both folders
    report = learn_from(spam, folders)
    assert [(f.kind, f.new, f.repeated) for f in report.folders] == [("spam", 4, 0), ("ham", 3, 1)]
    assert (store.stats().nspam, store.stats().nham) == (4, 3) and len(store.learnt) == 7
    again = learn_from(spam, folders)
    assert [(f.new, f.known, f.repeated) for f in again.folders] == [(0, 4, 0), (0, 3, 1)]
    assert (store.stats().nspam, store.stats().nham) == (4, 3)
    with pytest.raises(FileNotFoundError):
        learn_from(spam, tmp_path / "nothing", "spam")


def test_digest_ignores_line_ends_only() -> None:
    data = message(1)
    assert digest(data) == digest(data.replace(b"\n", b"\r\n"))
    assert digest(data) != digest(message(2))
