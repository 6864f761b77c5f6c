"""The process's runtime, for the code that has none in hand; and the message a handler runs for.

Jobs receive the process's :class:`lamson.runtime.Runtime` as an argument.
Code written for Lamson 1.x cannot: a handler calls ``relay.deliver(reply)``,
``defer(message)`` or ``Queue("run/posts").push(message)`` with no runtime in
hand, and those must still reach the worker's outbox, spools and Redis. So
:func:`lamson.runtime.build_runtime` installs the runtime here, once per
process, and those few 1.x entry points read it with :func:`get`
(docs/design.md, "One runtime per process"). Nothing else should.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamson.runtime import Runtime


def __getattr__(name: str) -> Any:
    """``lamson.context.Context``: the runtime's earlier name."""
    if name == "Context":
        from lamson.runtime import Runtime

        return Runtime
    raise AttributeError(f"module 'lamson.context' has no attribute {name!r}")


_current: Runtime | None = None


def install(runtime: Runtime | None) -> Runtime | None:
    """Make ``runtime`` the one this process's 1.x entry points use (None uninstalls it: tests)."""
    global _current
    _current = runtime
    return runtime


def current() -> Runtime:
    """The installed context; a clear error when called outside a Lamson worker."""
    if _current is None:
        raise RuntimeError("no Lamson worker context: this runs in `lamson worker` / `lamson relay` processes")
    return _current


def get() -> Runtime | None:
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
