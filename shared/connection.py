"""The Redis connection every stage uses, built from ``settings.redis_url``."""

from __future__ import annotations

from collections.abc import Iterable

import redis


def connect(url: str, *, timeout: float = 5.0) -> redis.Redis:
    """A client with bounded timeouts, so a dead Redis is an error, never a hang.

    Replies are bytes (``decode_responses=False``): rq requires that, and
    mail is bytes.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=max(timeout, 30.0),
        health_check_interval=30,
        retry_on_timeout=False,
    )


# Replies of a connection from connect() are bytes; redis-py's types also allow the
# str replies of a decode_responses=True client. These read either, typed.


def text(value: bytes | str) -> str:
    """One reply (a key, a member, a field value) as text."""
    return value.decode() if isinstance(value, bytes) else value


def data(value: bytes | str | None) -> bytes:
    """One reply as bytes, ``b""`` for a missing one (nil)."""
    if value is None:
        return b""
    return value if isinstance(value, bytes) else value.encode()


def members(reply: Iterable[object]) -> list[str]:
    """The members of a sorted-set range read without scores, as text."""
    found = []
    for member in reply:
        if not isinstance(member, bytes | str):
            raise TypeError(f"expected a member, got {member!r} (a range read with scores?)")
        found.append(text(member))
    return found
