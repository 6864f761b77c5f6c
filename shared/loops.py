"""Mail loops and backscatter: the trace header, inherited hop counts, once-per-message replies, reply rates.

Three mechanisms, each bounding a different way an application can end up
mailing without end (docs/security.md, "Mail loops and amplification"):

* **Trace** (Mailman's ``X-BeenThere``): the relay adds
  ``X-Lamson-Loop: NAMESPACE@INSTALLATION`` (:func:`trace_name`) to every
  message it sends. A reply made while handling a message that carried our
  trace *k* times carries it *k* + 1 times (the count is inherited through
  the outbox record, because a reply is a new message whose headers were not
  copied), and a forwarded message keeps its own and gains one. The router
  parks incoming mail that carries our trace more than ``max_loop_traces``
  times instead of routing it.
* **Once per message** (:func:`first_for`): routing is per envelope
  recipient, so one message to 100 served addresses runs a handler 100
  times; a handler that answers the sender asks ``first_for(message)`` and
  answers only the first time.
* **Reply rate** (:func:`over_rate`): the relay worker parks (in
  ``bounced_dir``, with the reason) automatic mail to an address that has
  already had ``reply_rate_limit`` of them in one minute, counted by the
  minute the message each one answers was *accepted* (the receiver's time,
  carried in the outbox record), so a backlog released at once after an
  outage counts as the mail arrived, not as a burst.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lamson import context
from lamson.encoding import header_block_end
from lamson.names import Names, names_for
from lamson.typed_settings import Settings

__all__ = [
    "TRACE_HEADER",
    "add_traces",
    "count_traces",
    "first_for",
    "handling",
    "inherited",
    "over_rate",
    "trace_name",
]

#: The trace header the relay adds to everything it sends.
TRACE_HEADER = "X-Lamson-Loop"
#: Outbox envelope extras: "1" for mail a handler sent while handling a message (automatic);
#: how many of our traces the message it answered carried.
AUTO = "auto"
LOOP = "loop"
#: How long first_for remembers a message (seconds): longer than any retry of it.
ANSWERED_TTL = 7 * 24 * 3600

_TRACE_LINE = re.compile(rb"^x-lamson-loop[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
_OURS = re.compile(rb"lamson-loop", re.IGNORECASE)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9.@_-]")

#: The count of our traces on the message being handled (None: not handling one).


def installation(settings: Settings | Any) -> str:
    """``loop_name`` from settings, else ``LAMSON_HOSTNAME``, else the host name."""
    import os

    name = Settings.of(settings).loop_name or os.environ.get("LAMSON_HOSTNAME") or socket.gethostname()
    return _SAFE_NAME.sub("", str(name)).lower() or "localhost"


def trace_name(settings: Any, names: Names | None = None) -> str:
    """What our trace header says: ``NAMESPACE@INSTALLATION`` (ASCII, no spaces)."""
    namespace = (names or names_for(settings)).namespace
    return f"{namespace}@{installation(settings)}"


def count_traces(data: bytes, name: str) -> int:
    """How many ``X-Lamson-Loop: NAME`` headers the header block of ``data`` holds (case-insensitive)."""
    end = header_block_end(data)
    head = data if end is None else data[:end]
    if _OURS.search(head) is None:  # (no lowered copy of the header block for every message)
        return 0
    wanted = name.lower().encode("ascii", "replace")
    return sum(1 for m in _TRACE_LINE.finditer(head) if m.group(1).strip().lower() == wanted)


def add_traces(data: bytes, name: str, inherited: int = 0) -> bytes:
    """``data`` with trace headers prepended so it carries ``max(its own, inherited) + 1`` of ours.

    Prepended, as ``Received:`` is: the header block's end is never searched
    for, so a message without a body (or without a blank line) still gets them.
    """
    have = count_traces(data, name)
    missing = max(have, inherited) + 1 - have
    line = f"{TRACE_HEADER}: {name}\r\n".encode("ascii")
    return line * missing + data


@contextmanager
def handling(traces: int) -> Iterator[None]:
    """While a handler runs for a message carrying ``traces`` of ours (lamson.context.handling, traces only)."""
    with context.handling(context.Handling(traces=traces)):
        yield


def inherited() -> int | None:
    """The trace count of the message being handled, or None outside a handler."""
    current = context.handled()
    return None if current is None else current.traces


def first_for(message: Any, scope: str = "", *, conn: Any = None, names: Names | None = None) -> bool:
    """True the first time it is asked for this incoming message (and ``scope``), False afterwards.

    A message accepted for many recipients is routed once per recipient; a
    handler that answers the *sender* should answer it once:

        if auto_reply_allowed(message) and first_for(message):
            relay.deliver(...)

    The message is known by the receiver's id (``message.envelope.id``, the
    same for all its recipients), remembered in Redis under
    ``NAMESPACE:answered:SCOPE:ID`` for a week. ``scope`` separates handlers
    that should each answer once (two lists on one message). A message handled
    again after its worker died (one more attempt) may be answered again:
    at-least-once, never none. Without an envelope (unit tests, a Maildir
    queue) every call is first.
    """
    env = getattr(message, "envelope", None)
    if env is None or not getattr(env, "id", ""):
        return True
    if conn is None or names is None:
        from lamson import context

        ctx = context.get()
        if ctx is None:
            return True
        conn = conn if conn is not None else ctx.conn
        names = names if names is not None else ctx.names
    key = names.key("answered", scope, env.id) if scope else names.key("answered", env.id)
    token = str(getattr(env, "attempts", 0))
    # The command itself: redis-py's set() wrapper costs a third of the round trip, once per message.
    if conn.execute_command("SET", key, token, "NX", "EX", ANSWERED_TTL):
        return True
    seen = conn.get(key)
    if seen is not None and (seen.decode() if isinstance(seen, bytes) else str(seen)) != token:
        conn.set(key, token, ex=ANSWERED_TTL)  # an earlier attempt died: this one answers
        return True
    return False


def over_rate(conn: Any, names: Names, address: str, limit: int, now: float | None = None) -> int | None:
    """Count one automatic message to ``address``; its count in the minute of ``now`` when over ``limit``,
    else None.

    A fixed one-minute window per address (``NAMESPACE:replies:ADDRESS:MINUTE``,
    expiring two minutes after its last count). ``now`` (default: the clock) is
    the time the message is counted at: the relay passes when the message it
    answers was accepted. ``limit`` 0 or less: no limit.
    """
    if limit <= 0:
        return None
    minute = int((time.time() if now is None else now) // 60)
    key = names.key("replies", address.lower(), str(minute))
    pipe = conn.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count = int(pipe.execute()[0])
    return count if count > limit else None
