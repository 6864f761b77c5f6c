"""The member stores keep one contract: the in-memory one (handler tests) and the Redis one (the lists).

The Redis store runs too when LIST_TEST_REDIS_URL names a Redis to use (keys under
the namespace "listtest", removed before each test): the repository's suite
sets it (tests/examples/test_list.py), so both stores are held to the same tests.
"""

import os

import pytest
from app.model.members import MemoryMembers, RedisMembers

from lamson.names import Names

REDIS_URL = os.environ.get("LIST_TEST_REDIS_URL", "")


def pytest_generate_tests(metafunc):
    if "store" in metafunc.fixturenames:
        metafunc.parametrize("store", ["memory", "redis"] if REDIS_URL else ["memory"], indirect=True)


@pytest.fixture
def store(request):
    if request.param == "memory":
        return MemoryMembers()
    import redis

    conn = redis.Redis.from_url(REDIS_URL)
    stale = list(conn.scan_iter(match="listtest:*"))
    if stale:
        conn.delete(*stale)
    return RedisMembers(conn=conn, names=Names("listtest"))


def test_add_disable_and_come_back(store):
    store.add("l", "Alice@Example.org")
    assert store.is_member("l", "alice@example.org") and store.members("l") == ["alice@example.org"]
    assert store.members("other") == []
    assert store.bounced("l", "alice@example.org", "hard") == 1
    assert store.bounced("l", "alice@example.org", "soft") == 1
    assert store.bounced("l", "alice@example.org", "soft") == 2
    assert store.bounces("l", "alice@example.org") == {"soft": 2, "hard": 1}
    assert store.disable("l", "alice@example.org") and not store.disable("l", "alice@example.org")
    assert store.is_disabled("l", "alice@example.org") and store.members("l") == []
    store.add("l", "alice@example.org")
    assert store.is_member("l", "alice@example.org") and not store.is_disabled("l", "alice@example.org")
    assert store.bounces("l", "alice@example.org") == {"soft": 0, "hard": 0}
    assert store.remove("l", "alice@example.org") and not store.remove("l", "alice@example.org")
    assert not store.is_member("l", "alice@example.org")


def test_a_disabled_member_can_be_removed(store):
    store.add("l", "bob@example.net")
    store.disable("l", "bob@example.net")
    assert store.remove("l", "bob@example.net")
    assert not store.is_disabled("l", "bob@example.net")


def test_bad_bounce_kind(store):
    with pytest.raises(ValueError):
        store.bounced("l", "bob@example.net", "medium")


def test_members_are_sorted(store):
    for address in ("c@x.org", "a@x.org", "b@x.org"):
        store.add("l", address)
    assert store.members("l") == ["a@x.org", "b@x.org", "c@x.org"]


def test_refusal_once_per_interval(store):
    assert store.first_refusal("l", "bob@x.org", 60)
    assert not store.first_refusal("l", "BOB@x.org", 60)
    assert store.first_refusal("other", "bob@x.org", 60)


def test_refusal_again_after_the_interval():
    now = [1000.0]
    memory = MemoryMembers(clock=lambda: now[0])
    assert memory.first_refusal("l", "bob@x.org", 60)
    now[0] += 61
    assert memory.first_refusal("l", "bob@x.org", 60)
