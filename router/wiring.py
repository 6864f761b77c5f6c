"""Wiring a router for a router worker: conversation state and locks in Redis, parked mail on disk.

Not part of the handler author's API (that is :mod:`lamson.router`'s
``__all__``): :func:`lamson.runtime.build_runtime` calls :func:`wire` once,
before the application's ``config.boot`` runs; the boot then sets defaults
and loads handlers into the same router, as the guide shows. Without it
(unit tests, ``config/testing.py``) a router keeps in-memory state and
in-process locks.
"""

from __future__ import annotations

from typing import Any

import redis

from lamson.names import names_for
from lamson.queue import Queue
from lamson.router.locks import RedisLocks
from lamson.router.routing import Router, RouterClass
from lamson.router.state import RedisStorage
from lamson.typed_settings import Settings


def wire(router: RouterClass | None, conn: redis.Redis, settings: Any) -> RouterClass:
    """Put ``router`` (None: the process's ``Router``) on Redis under the application's namespace.

    Reads ``namespace``, ``lock_timeout``, ``lock_wait`` and
    ``undeliverable_dir``. (An old ``state_prefix`` setting still wins for the
    state and lock keys, so state stored by an earlier version is found.)
    """
    router = Router if router is None else router
    config = Settings.of(settings)
    prefix = config.state_prefix or names_for(config.module).key("")
    router.STATE_STORE = RedisStorage(conn, prefix=prefix)
    router.LOCKS = RedisLocks(conn, prefix=prefix, timeout=float(config.lock_timeout), wait=float(config.lock_wait))
    router.UNDELIVERABLE_QUEUE = Queue(config.undeliverable_dir)
    return router


def setup_worker(conn: redis.Redis, settings: Any) -> None:
    """The process's ``Router`` on Redis (:func:`wire`); kept for code written against earlier versions."""
    wire(None, conn, settings)
