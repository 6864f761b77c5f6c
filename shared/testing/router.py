"""Resetting the process-wide Router between tests.

The Router is the one process-wide mutable object: tests either reset it
completely (:func:`reset_router`) or run inside :func:`router_snapshot`,
which keeps the application's loaded routes but gives the test fresh
in-memory state and restores everything afterwards. Both forget the mail
CapturingRelays captured in this process, and only that: the test queue's
Maildir on disk (``run/queue``) is emptied by ``clear_queue()`` or a
conversation's ``begin()``, never behind a test's back.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

from lamson.router import LocalLocks, MemoryStorage, Router, RouterClass
from lamson.testing.relay import SENT


def reset_router() -> RouterClass:
    """Back to a new process's Router: no routes, no defaults, memory state, local locks."""
    type(Router).__init__(Router)
    SENT.clear()
    return Router


@contextmanager
def router_snapshot() -> Iterator[RouterClass]:
    """Run with the current routes, fresh conversation state; restore the Router after."""
    saved = {name: copy.copy(value) for name, value in vars(Router).items()}
    Router.STATE_STORE = MemoryStorage()
    Router.LOCKS = LocalLocks()
    SENT.clear()
    try:
        yield Router
    finally:
        vars(Router).clear()
        vars(Router).update(saved)
        SENT.clear()
