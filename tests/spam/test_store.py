"""Token stores: exact counts under concurrency, never below zero, one app's counts invisible to another."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
import redis

from lamson.names import Names
from lamson.spam import Filter, MemoryStore, RedisStore
from lamson.spam.store import TokenStore
from tests.spam.corpus import NEW_HAM, NEW_SPAM

TOKENS = [f"token{i}" for i in range(50)]


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest, redis_conn: redis.Redis) -> TokenStore:
    if request.param == "redis":
        return RedisStore(redis_conn, Names("spamtest"), "run/spamdb")
    return MemoryStore("run/spamdb")


def test_train_counts_and_totals(store: TokenStore) -> None:
    store.train(TOKENS[:3], True)
    store.train(TOKENS[1:4], False)
    counts = store.counts(TOKENS[:5])
    assert (counts.nspam, counts.nham) == (1, 1)
    assert counts.spam == [1, 1, 1, 0, 0] and counts.ham == [0, 1, 1, 1, 0]
    stats = store.stats()
    assert (stats.nspam, stats.nham, stats.spam_tokens, stats.ham_tokens, stats.tokens) == (1, 1, 3, 3, 4)


def test_untrain_never_goes_below_zero(store: TokenStore) -> None:
    store.untrain(TOKENS[:3], True)  # never trained
    counts = store.counts(TOKENS[:3])
    assert (counts.nspam, counts.spam) == (0, [0, 0, 0])
    store.train(TOKENS[:2], True)
    store.untrain(TOKENS[:3], True)
    store.untrain(TOKENS[:3], True)
    counts = store.counts(TOKENS[:3])
    assert (counts.nspam, counts.spam) == (0, [0, 0, 0])
    assert store.stats().tokens == 0  # zero counts are removed, not kept as zeros


def test_concurrent_training_from_threads_is_exact(store: TokenStore) -> None:
    rounds, threads = 40, 6

    def work() -> None:
        for _ in range(rounds):
            store.train(TOKENS, True)
            store.train(TOKENS[:10], False)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    counts = store.counts(TOKENS)
    assert counts.nspam == counts.nham == rounds * threads
    assert counts.spam == [rounds * threads] * len(TOKENS)
    assert counts.ham == [rounds * threads] * 10 + [0] * 40


def _train_in_process(url: str, rounds: int) -> None:
    conn = redis.Redis.from_url(url)
    store = RedisStore(conn, Names("spamtest"), "run/spamdb")
    for _ in range(rounds):
        store.train(TOKENS, True)
        store.untrain(TOKENS[:5], True)
        store.train(TOKENS[:5], True)
    conn.close()


def test_concurrent_training_from_processes_is_exact(redis_url: str, redis_conn: redis.Redis) -> None:
    rounds, processes = 30, 4
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_train_in_process, args=(redis_url, rounds)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join(60)
            assert worker.exitcode == 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join(5)
    counts = RedisStore(redis_conn, Names("spamtest"), "run/spamdb").counts(TOKENS)
    assert counts.nspam == rounds * processes  # each round: +1, -1, +1
    assert counts.spam == [rounds * processes] * len(TOKENS)


def test_scoring_reads_in_one_round_trip(trained: Filter, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int] = []
    original = redis.connection.Connection.send_packed_command

    def counting(self: redis.connection.Connection, command: object, check_health: bool = True) -> None:
        sent.append(1)
        original(self, command, check_health)

    trained.score(NEW_HAM)  # warm up: the connection exists
    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    trained.score(NEW_SPAM)
    assert len(sent) == 1
    sent.clear()
    trained.train_ham(NEW_HAM)
    assert len(sent) == 1


def test_two_applications_on_one_redis_do_not_share(redis_conn: redis.Redis) -> None:
    first = Filter("run/spamdb", redis=redis_conn, names=Names("app1"))
    second = Filter("run/spamdb", redis=redis_conn, names=Names("app2"))
    first.train_spam(NEW_SPAM)
    first.train_ham(NEW_HAM)
    assert (first.stats().nspam, first.stats().nham) == (1, 1)
    assert (second.stats().nspam, second.stats().nham, second.stats().tokens) == (0, 0, 0)
    assert second.score(NEW_SPAM) == 0.5
    assert sorted(k.decode() for k in redis_conn.keys("*")) == [
        "app1:spam:run/spamdb:h", "app1:spam:run/spamdb:meta", "app1:spam:run/spamdb:s"]
    second.clear()
    assert first.stats().nspam == 1


def test_storage_names_are_escaped_into_keys(redis_conn: redis.Redis) -> None:
    odd = Filter("a:b", redis=redis_conn, names=Names("app1"))
    other = Filter("a", redis=redis_conn, names=Names("app1"))
    odd.train_spam(NEW_SPAM)
    assert other.stats().nspam == 0
    assert redis_conn.exists("app1:spam:a%3Ab:meta")


def test_memory_stores_are_shared_by_name() -> None:
    assert MemoryStore.named("run/spamdb") is MemoryStore.named("run/spamdb")
    assert MemoryStore.named("run/spamdb") is not MemoryStore.named("run/other")
