"""The in-memory member store behaves as the handlers expect (the Redis one is tested by the project)."""

from app.model.members import MemoryMembers


def test_add_disable_and_come_back():
    store = MemoryMembers()
    store.add("l", "Alice@Example.org")
    assert store.is_member("l", "alice@example.org") and store.members("l") == ["alice@example.org"]
    assert store.bounced("l", "alice@example.org", "hard") == 1
    assert store.disable("l", "alice@example.org") and not store.disable("l", "alice@example.org")
    assert store.is_disabled("l", "alice@example.org") and store.members("l") == []
    store.add("l", "alice@example.org")
    assert store.is_member("l", "alice@example.org") and not store.is_disabled("l", "alice@example.org")
    assert store.bounces("l", "alice@example.org") == {"soft": 0, "hard": 0}
    assert store.remove("l", "alice@example.org") and not store.remove("l", "alice@example.org")


def test_refusal_once_per_interval():
    now = [1000.0]
    store = MemoryMembers(clock=lambda: now[0])
    assert store.first_refusal("l", "bob@x.org", 60)
    assert not store.first_refusal("l", "bob@x.org", 60)
    assert store.first_refusal("other", "bob@x.org", 60)
    now[0] += 61
    assert store.first_refusal("l", "bob@x.org", 60)
