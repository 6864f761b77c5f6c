"""The one object a worker process builds at start and every job reads.

rq calls a job by its dotted name with only its (JSON) arguments, so a job
cannot be handed its services directly; instead the worker process builds a
:class:`Context` once (settings, Redis, the application's names, its spools
and outbox, its own worker id) and installs it, and jobs, ``Relay.deliver``,
``defer`` and the confirmation engine read it with :func:`current`. There is
exactly one per process, set in one place; tests install their own.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import redis

from lamson.names import Names


@dataclass
class Context:
    """The process-wide services of a Lamson worker (router, relay, queue receiver)."""

    settings: ModuleType | Any
    conn: redis.Redis
    names: Names
    #: This process's worker id: unique across hosts, restarts and applications.
    worker_id: str = ""
    #: Spools by worker-group name ("incoming", deferred queues), opened on demand.
    spools: dict[str, Any] = field(default_factory=dict)
    #: The outgoing spool the relay delivers from (None until opened).
    outbox: Any = None
    #: Replies written by handlers during the current routing batch, not yet made durable.
    pending_outbox: list[str] = field(default_factory=list)
    #: The relay worker's kept-open SMTP sessions (lamson.relay.smtp.Connections).
    smtp: Any = None
    #: A QueueReceiver's size_limit (bytes; 0: none).
    queue_size_limit: int = 0
    #: Set when the process is told to stop: a job finishes the message in hand and hands the
    #: rest back (a job following a busy sender's line would otherwise run on and on).
    stopping: bool = False

    def spool(self, group: str = "incoming") -> Any:
        """The spool of a worker group ("incoming", "outgoing", a deferred queue), opened once."""
        if group not in self.spools:
            from lamson.spool import open_spool

            self.spools[group] = open_spool(self.settings, self.conn, group)
        return self.spools[group]

    def lines(self, group: str = "incoming") -> Any:
        """The per-sender lines (lamson.order) of a worker group."""
        from lamson.order import Lines

        return Lines(self.conn, self.names, group)


_current: Context | None = None


def install(context: Context | None) -> Context | None:
    """Make ``context`` the one this process uses (None uninstalls it: tests)."""
    global _current
    _current = context
    return context


def current() -> Context:
    """The installed context; a clear error when called outside a Lamson worker."""
    if _current is None:
        raise RuntimeError("no Lamson worker context: this runs in `lamson worker` / `lamson relay` processes")
    return _current


def get() -> Context | None:
    """The installed context, or None (unit tests, scripts, the CLI)."""
    return _current


def app_settings() -> Any:
    """The application's settings: the worker's, else loaded (scripts, tests).

    Built-in handlers (lamson.handlers) cannot import ``config.settings`` as an
    application's handlers do: they do not know its module name.
    """
    if _current is not None and _current.settings is not None:
        return _current.settings
    from lamson import settings

    return settings.load()


@dataclass(frozen=True)
class Handling:
    """The incoming message a handler is running for: what the mail it sends inherits.

    The router sets it around each handler call; ``Relay.deliver`` reads it to
    mark the outgoing record as automatic mail, carry the loop-trace count
    (lamson.loops), the accept time for the latency metric (lamson.metrics)
    and the message's id for the logs.
    """

    traces: int = 0
    accepted_at: float | None = None
    #: The receiver's id of the message (lamson.envelope.Envelope.id): its replies carry it
    #: (envelope extra ``origin``), so the relay's log lines name it too (docs/operations.md, "Logs").
    id: str = ""
    #: Why the Router parked the message (a handler raised or refused it, no route took it), if it
    #: did: the routing job then reports it parked, not routed.
    parked: list[str] = field(default_factory=list, compare=False)


_handling: contextvars.ContextVar[Handling | None] = contextvars.ContextVar("lamson_handling", default=None)


@contextmanager
def handling(current: Handling) -> Iterator[None]:
    """While a handler runs for the message ``current`` describes."""
    token = _handling.set(current)
    try:
        yield
    finally:
        _handling.reset(token)


def handled() -> Handling | None:
    """The message being handled, or None outside a handler (a script, the CLI)."""
    return _handling.get()
