"""Does this Redis keep what Lamson gives it?

Queues and (with the Redis spool) mail live in Redis, so a Redis without
persistence, or one allowed to evict keys, can lose accepted mail. Stages
call this at start-up and warn loudly (or, for the Redis spool, refuse).
"""

from __future__ import annotations

import redis


def persistence_problems(conn: redis.Redis) -> list[str]:
    """Human-readable problems with this Redis's durability; empty when fine."""
    problems = []
    try:
        config = conn.config_get("appendonly")
        policy = conn.config_get("maxmemory-policy")
    except redis.ResponseError:
        return []  # CONFIG disabled (managed Redis): nothing we can check
    if config.get("appendonly", "yes") not in ("yes", b"yes"):
        problems.append("Redis persistence (appendonly) is off: queued jobs die with Redis")
    value = policy.get("maxmemory-policy", "noeviction")
    if isinstance(value, bytes):
        value = value.decode()
    if value != "noeviction":
        problems.append(f"Redis maxmemory-policy is {value!r}: queue keys may be evicted (use noeviction)")
    return problems
