"""Per-conversation order: one sender's messages are handled in the order they were accepted.

A conversation is a state machine, so the second message from a sender must
not be handled before the first, whichever workers or hosts pick them up.
Each sender has a *line* in Redis: a sorted set of the spool keys of their
messages still to handle, scored by acceptance time (from the key's name, so
the receiver, the sweeper and a requeue all put a message in the same place).
A worker handles a message only when it is at the head of its line; when done
it removes it and takes the next one if it is waiting, so a burst from one
sender is handled in order by one worker while other senders run in
parallel. Messages with the null sender ``<>`` (bounces, from many servers)
have no line.

The line holds only pointers: losing it (Redis flushed) loses no mail; the
sweeper puts waiting messages back in line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from lamson.connection import members
from lamson.names import Names
from lamson.spool import key_time

#: A line nobody added to for this long is dropped (its sender went quiet long ago).
LINE_TTL = 7 * 24 * 3600


def sender_of(mail_from: str) -> str:
    """The line a message joins: its envelope sender, lower-cased; "" for ``<>``."""
    return (mail_from or "").strip().lower()


class Lines:
    """The per-sender lines of one worker group."""

    def __init__(self, conn: redis.Redis, names: Names, group: str = "incoming") -> None:
        self.conn = conn
        self.prefix = names.key("line", group) + ":"

    def _key(self, sender: str) -> str:
        return self.prefix + sender

    def add(self, entries: Iterable[tuple[str, str]], pipeline: Any = None) -> None:
        """Put ``(key, sender)`` pairs in their senders' lines (already there: left as is)."""
        pipe = pipeline if pipeline is not None else self.conn.pipeline(transaction=False)
        added = False
        for key, sender in entries:
            sender = sender_of(sender)
            if not sender:
                continue
            pipe.zadd(self._key(sender), {key: key_time(key)}, nx=True)
            pipe.expire(self._key(sender), LINE_TTL)
            added = True
        if pipeline is None and added:
            pipe.execute()

    def head(self, sender: str) -> str | None:
        """The key whose turn it is in this sender's line (None: no line)."""
        sender = sender_of(sender)
        if not sender:
            return None
        first = members(self.conn.zrange(self._key(sender), 0, 0))
        return first[0] if first else None

    def done(self, sender: str, key: str) -> str | None:
        """Remove ``key`` from its line; return the key whose turn it is now (or None)."""
        sender = sender_of(sender)
        if not sender:
            return None
        # No MULTI: a message joining the line between the two only makes the answer more recent.
        pipe = self.conn.pipeline(transaction=False)
        pipe.zrem(self._key(sender), key)
        pipe.zrange(self._key(sender), 0, 0)
        _, first = pipe.execute()
        return first[0].decode() if first else None
