"""RedisStorage and RedisLocks against a real Redis; setup_worker; the router on Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from lamson.router import ConversationBusy, RedisLocks, RedisStorage, RouterClass, setup_worker
from lamson.testing import make_message
from tests.router.handlers import sample


def test_redis_storage_get_set_clear_list(redis_conn: redis.Redis) -> None:
    store = RedisStorage(redis_conn, prefix="t1:")
    assert store.get("app.h", "a@x.org") == "START"
    store.set("app.h", "a@x.org", "RUNNING")
    store.set("app:h\"weird", "b@x.org", "END")
    assert store.get("app.h", "a@x.org") == "RUNNING"
    assert RedisStorage(redis_conn, prefix="t1:").get("app:h\"weird", "b@x.org") == "END"
    assert RedisStorage(redis_conn, prefix="other:").get("app.h", "a@x.org") == "START"
    assert sorted(store.conversations()) == [("app.h", "a@x.org", "RUNNING"), ("app:h\"weird", "b@x.org", "END")]
    store.set("app.h", "a@x.org", "START")  # back to START: the record goes
    assert list(store.conversations()) == [("app:h\"weird", "b@x.org", "END")]
    store.clear()
    assert list(store.conversations()) == []
    assert redis_conn.keys("t1:*") == []


def test_lock_has_expiry_and_dead_holder_frees_it(redis_conn: redis.Redis) -> None:
    locks = RedisLocks(redis_conn, prefix="t2:", timeout=1.0, wait=0.2)
    # A holder that died: its lock key exists, with a TTL, and nobody releases it.
    dead = redis_conn.lock("t2:lock:conv", timeout=1.0)
    assert dead.acquire(blocking=False)
    assert 0 < redis_conn.pttl("t2:lock:conv") <= 1000
    with pytest.raises(ConversationBusy):
        with locks.hold(["conv"]):
            pass
    slow = RedisLocks(redis_conn, prefix="t2:", timeout=1.0, wait=5.0)
    with slow.hold(["conv"]):
        assert redis_conn.pttl("t2:lock:conv") > 0
    assert redis_conn.exists("t2:lock:conv") == 0


def test_lock_is_extended_while_a_long_handler_runs(redis_conn: redis.Redis) -> None:
    locks = RedisLocks(redis_conn, prefix="t3:", timeout=0.6, wait=0.1)
    with locks.hold(["conv", "another"]):
        time.sleep(1.5)  # longer than the timeout: the watchdog keeps both alive
        assert redis_conn.pttl("t3:lock:conv") > 0
        assert redis_conn.pttl("t3:lock:another") > 0
        with pytest.raises(ConversationBusy):
            with locks.hold(["another"]):
                pass
    assert redis_conn.keys("t3:*") == []


def test_all_or_nothing_in_sorted_order(redis_conn: redis.Redis) -> None:
    locks = RedisLocks(redis_conn, prefix="t4:", timeout=5, wait=0.3)
    other = redis_conn.lock("t4:lock:b", timeout=5)
    assert other.acquire(blocking=False)
    with pytest.raises(ConversationBusy) as info:
        with locks.hold(["c", "b", "a"]):
            raise AssertionError("must not run")
    assert info.value.name == "b"
    # "a" was taken then given back; "c" was never taken.
    assert redis_conn.exists("t4:lock:a") == 0 and redis_conn.exists("t4:lock:c") == 0
    other.release()


def test_threads_on_redis_locks_serialise(redis_conn: redis.Redis) -> None:
    locks = RedisLocks(redis_conn, prefix="t5:", timeout=5, wait=30)
    redis_conn.set("counter", 0)

    def work() -> None:
        for _ in range(25):
            with locks.hold(["conv"]):
                n = int(redis_conn.get("counter") or 0)
                redis_conn.set("counter", n + 1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(redis_conn.get("counter") or 0) == 100


def test_setup_worker_puts_router_on_redis(router: RouterClass, redis_conn: redis.Redis, tmp_path) -> None:
    class Settings:
        lock_timeout = 30
        lock_wait = 10
        undeliverable_dir = str(tmp_path / "undeliverable")
        state_prefix = "app1:"

    setup_worker(redis_conn, Settings)
    assert isinstance(router.STATE_STORE, RedisStorage) and router.STATE_STORE.prefix == "app1:"
    assert isinstance(router.LOCKS, RedisLocks) and router.LOCKS.timeout == 30 and router.LOCKS.wait == 10
    router.defaults(host="test\\.com")
    router.load(["tests.router.handlers.sample"])
    m = make_message("Joe@Example.org", "a@test.com", "hi", "x")
    router.deliver(m)
    router.deliver(make_message("joe@example.org", "nobody@elsewhere.org", "lost", "x"))
    assert [c[0] for c in sample.CALLS] == ["START"]
    fresh = RedisStorage(redis_conn, prefix="app1:")
    assert fresh.get("tests.router.handlers.sample", "joe@example.org") == "NEW_USER"
    assert router.UNDELIVERABLE_QUEUE.count() == 1
    assert [k for k in redis_conn.keys("app1:*") if b"lock" in k] == []


def test_kept_locks_serve_one_senders_burst_and_go_when_others_are_needed(redis_conn: redis.Redis) -> None:
    """Inside keeping() a message's locks stay for the next message needing the same ones, and only then."""
    locks = RedisLocks(redis_conn, prefix="t7:", timeout=0.6, wait=5)
    rival = RedisLocks(redis_conn, prefix="t7:", timeout=0.6, wait=0.1)
    with locks.keeping():
        with locks.hold(["m\x1fa@x.org"]):
            token = redis_conn.get("t7:lock:m\x1fa@x.org")
        # Between two messages of a@x.org the lock stays ours (the same token) and the
        # watchdog keeps extending it past lock_timeout.
        time.sleep(1.0)
        assert redis_conn.get("t7:lock:m\x1fa@x.org") == token
        with pytest.raises(ConversationBusy):
            with rival.hold(["m\x1fa@x.org"]):
                pass
        with locks.hold(["m\x1fa@x.org"]):
            assert redis_conn.get("t7:lock:m\x1fa@x.org") == token  # not taken again
        # A message of another sender: a@x.org's lock is released before b@x.org's is taken.
        with locks.hold(["m\x1fb@x.org"]):
            assert redis_conn.exists("t7:lock:m\x1fa@x.org") == 0
            with rival.hold(["m\x1fa@x.org"]):
                pass
        assert redis_conn.exists("t7:lock:m\x1fb@x.org") == 1
        # A state function that raises: its locks go at once.
        with pytest.raises(RuntimeError):
            with locks.hold(["m\x1fb@x.org"]):
                raise RuntimeError("handler bug")
        assert redis_conn.exists("t7:lock:m\x1fb@x.org") == 0
        with locks.hold(["m\x1fc@x.org"]):
            pass
        assert redis_conn.exists("t7:lock:m\x1fc@x.org") == 1
    assert redis_conn.keys("t7:*") == []  # the end of the job releases what was kept
    # Outside keeping(), nothing is kept.
    with locks.hold(["m\x1fa@x.org"]):
        pass
    assert redis_conn.keys("t7:*") == []
