"""Pointing the process-wide Router at Redis, for router worker processes.

The worker calls :func:`setup_worker` once, before it imports the
application's ``config.boot``; the boot then sets defaults and loads handlers
as the guide shows. Without it (unit tests, ``config/testing.py``) the
Router keeps in-memory state and in-process locks.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import redis

from lamson.names import names_for
from lamson.queue import Queue
from lamson.router.locks import RedisLocks
from lamson.router.routing import Router
from lamson.router.state import RedisStorage


def setup_worker(conn: redis.Redis, settings: ModuleType | Any) -> None:
    """Conversation state and locks in Redis under the application's namespace; parked mail in a Maildir.

    Reads ``settings.namespace``, ``settings.lock_timeout``,
    ``settings.lock_wait`` and ``settings.undeliverable_dir``. (An old
    ``state_prefix`` setting still wins for the state and lock keys, so state
    stored by an earlier version is found.)
    """
    prefix = getattr(settings, "state_prefix", None) or names_for(settings).key("")
    Router.STATE_STORE = RedisStorage(conn, prefix=prefix)
    Router.LOCKS = RedisLocks(conn, prefix=prefix, timeout=float(settings.lock_timeout),
                              wait=float(settings.lock_wait))
    Router.UNDELIVERABLE_QUEUE = Queue(settings.undeliverable_dir)
