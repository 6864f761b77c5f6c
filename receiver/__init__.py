"""The SMTP receiver: accept, spool durably, enqueue the routing job. Nothing else.

It runs no application code and parses no more than the envelope needs, so
a bug in a handler can never make it refuse or lose mail.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: The environment variable that picks the event loop: ``uvloop`` (the default where it is
#: installed) or ``asyncio`` (the standard library's).
EVENT_LOOP_ENV = "LAMSON_EVENT_LOOP"


def loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """Which event loop the receiver and the logging server run: (its name, its factory).

    uvloop's loop (libuv, in C) costs measurably less CPU per SMTP command than the
    standard library's selector loop (docs/design.md, "The receiver's event loop").
    ``LAMSON_EVENT_LOOP=asyncio`` turns it off, e.g. to rule it out when debugging;
    an unknown value, or uvloop missing, falls back to the standard loop with a warning.
    """
    wanted = os.environ.get(EVENT_LOOP_ENV, "uvloop").strip().lower() or "uvloop"
    if wanted == "asyncio":
        return "asyncio", None
    if wanted != "uvloop":
        logging.getLogger("lamson.receiver").warning(
            "%s=%r is neither uvloop nor asyncio: using asyncio's loop", EVENT_LOOP_ENV, wanted)
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        logging.getLogger("lamson.receiver").warning("uvloop is not installed: using asyncio's loop")
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which loop runs, for the log line that says where a server listens."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks."""
    _, factory = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


@dataclass(frozen=True)
class SMTPReceiver:
    """Where the receiver process listens, as the guide's ``config/boot.py`` names it.

    In this Lamson the receiver is its own process (``lamson receiver``, run
    by supervisord); boot code that assigns ``settings.receiver =
    SMTPReceiver(host, port)`` keeps working and documents the address.
    """

    host: str = "127.0.0.1"
    port: int = 8823
