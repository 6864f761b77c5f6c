"""Spam filter fixtures: a trained filter on the suite's private Redis, and a clean memory switch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from lamson.names import Names
from lamson.spam import Filter, MemoryStore, use_memory_store
from tests.spam.corpus import corpus


@pytest.fixture(autouse=True)
def redis_by_default() -> Iterator[None]:
    """Every test starts (and leaves) with Redis as the store and no memory stores."""
    use_memory_store(False)
    MemoryStore.forget_all()
    yield
    use_memory_store(False)
    MemoryStore.forget_all()


@pytest.fixture(scope="session")
def training() -> tuple[list[bytes], list[bytes]]:
    return corpus()


@pytest.fixture
def trained(redis_conn: redis.Redis, training: tuple[list[bytes], list[bytes]]) -> Filter:
    """A Filter in namespace "spamtest" on the private Redis, trained on the small corpus."""
    spam = Filter("run/spamdb", redis=redis_conn, names=Names("spamtest"))
    ham_messages, spam_messages = training
    for message in ham_messages:
        spam.train_ham(message)
    for message in spam_messages:
        spam.train_spam(message)
    return spam
