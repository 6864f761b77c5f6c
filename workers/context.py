"""What a routing job needs from its worker process: settings, Redis, spool.

rq calls jobs by dotted name with only their arguments, so the process
builds this once at start (``install``) and jobs read it (``current``).
Tests install their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import redis

from lamson.spool import Spool


@dataclass
class WorkerContext:
    """The process-wide services a routing job uses."""

    settings: ModuleType
    conn: redis.Redis
    spool: Spool


_current: WorkerContext | None = None


def install(context: WorkerContext) -> WorkerContext:
    """Make ``context`` the one jobs in this process use."""
    global _current
    _current = context
    return context


def current() -> WorkerContext:
    """The installed context; a clear error when a job runs outside a Lamson worker."""
    if _current is None:
        raise RuntimeError("no Lamson worker context: routing jobs run in `lamson worker` processes")
    return _current
