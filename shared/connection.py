"""The Redis connection every stage uses, built from ``settings.redis_url``."""

from __future__ import annotations

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
