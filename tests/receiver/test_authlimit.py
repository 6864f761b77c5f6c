"""The AUTH failure limiter (lamson.receiver.authlimit): the policy in the process and in a real Redis.

The attack over SMTP against the real receiver is tests/reliability/test_attacks_auth.py; these
pin the policy's arithmetic with a clock the test moves, and the Redis script's atomicity.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from lamson.names import Names
from lamson.receiver.authlimit import LocalLimiter, Policy, RedisLimiter, account_tag

POLICY = Policy(free=3, window=60, max_delay=8)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_policy_delays_double_up_to_the_maximum() -> None:
    assert [POLICY.delay(n) for n in range(1, 9)] == [0, 0, 0, 1, 2, 4, 8, 8]
    assert Policy(free=5, window=10, max_delay=600).memory == 1200  # outlives the longest gate


def test_local_limiter_lets_a_few_mistakes_through_then_closes_gates() -> None:
    clock = Clock()
    limiter = LocalLimiter(POLICY, clock)
    assert [limiter.admit("alice", "192.0.2.1") for _ in range(3)] == [0, 0, 0]
    assert limiter.admit("alice", "192.0.2.1") == 0  # the 4th goes through and closes a 1 s gate
    assert limiter.admit("alice", "192.0.2.1") == pytest.approx(1.0)
    assert limiter.admit("alice", "192.0.2.9") == pytest.approx(1.0)  # the account's gate, from anywhere
    assert limiter.admit("bob", "192.0.2.1") == pytest.approx(1.0)  # the client's gate, for any account
    clock.now += 1.0
    assert limiter.admit("alice", "192.0.2.1") == 0  # 5th: a 2 s gate
    clock.now += 1.0
    assert limiter.admit("alice", "192.0.2.1") == pytest.approx(1.0)
    clock.now += 61 + 16  # the window (and twice the longest gate) after the last failure: forgotten
    assert [limiter.admit("alice", "192.0.2.1") for _ in range(3)] == [0, 0, 0]


def test_local_limiter_success_resets_the_account_and_refunds_the_client() -> None:
    limiter = LocalLimiter(POLICY, Clock())
    for _ in range(2):
        limiter.admit("alice", "192.0.2.1")
    limiter.admit("alice", "192.0.2.1")
    limiter.succeeded("alice", "192.0.2.1")
    # the account starts over; the client has two failures, so one more free attempt then the gate
    assert limiter.admit("alice", "192.0.2.2") == 0
    assert limiter.admit("carol", "192.0.2.1") == 0
    assert limiter.admit("carol", "192.0.2.1") == 0  # 4th of the client's: closes its gate
    assert limiter.admit("dave", "192.0.2.1") > 0


@pytest.fixture
def conn(redis_conn: redis.Redis) -> redis.Redis:
    return redis_conn


def test_redis_limiter_follows_the_policy_and_keeps_no_login_text(conn: redis.Redis) -> None:
    limiter = RedisLimiter(conn, Names("authtest"), POLICY)
    password_as_login = "hunter2-typed-as-name"
    assert [limiter.admit(password_as_login, "192.0.2.1") for _ in range(4)] == [0, 0, 0, 0]
    wait = limiter.admit(password_as_login, "192.0.2.1")
    assert 0.5 < wait <= 1.0
    keys = [k.decode() for k in conn.keys("authtest:auth:*")]
    assert keys and not any(password_as_login in k for k in keys)
    assert any(account_tag(password_as_login) in k for k in keys)
    assert all(conn.pttl(k) > 0 for k in keys)  # everything expires
    limiter.succeeded(password_as_login, "192.0.2.1")
    assert limiter.admit(password_as_login, "192.0.2.7") == 0  # the account starts over


def test_redis_limiter_admits_one_at_a_time_behind_a_gate_whatever_the_concurrency(conn: redis.Redis) -> None:
    """Forty attempts at once: the free ones and one more get through, the rest wait."""
    limiter = RedisLimiter(conn, Names("authtest"), Policy(free=3, window=60, max_delay=30))
    results: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(40)

    def attempt(n: int) -> None:
        start.wait()
        wait = limiter.admit("alice", f"192.0.2.{n}")
        with lock:
            results.append(wait)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 40
    assert sum(1 for w in results if w == 0) == 4


class DeadConnection:
    """A client whose every command fails as a stopped Redis's would."""

    def register_script(self, script: str) -> Any:
        def run(**_: Any) -> Any:
            raise redis.ConnectionError("Connection refused")
        return run


def test_redis_down_falls_back_to_the_process_limit_not_to_no_limit(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisLimiter(DeadConnection(), Names("authtest"), POLICY)
    assert [limiter.admit("alice", "192.0.2.1") for _ in range(4)] == [0, 0, 0, 0]
    assert limiter.admit("alice", "192.0.2.1") > 0
    assert sum("cannot be counted in Redis" in r.getMessage() for r in caplog.records) == 1
