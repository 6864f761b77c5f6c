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

A routing job reads a line a few entries ahead (:class:`Following`): a burst
from one sender costs one round trip per ``READ_AHEAD`` messages instead of
one per message. The keys it handled stay at the head of the line, still in
its hands (claimed), until it reads the line again or ends, so to any other
worker the line looks exactly as if the job were still on its first message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from lamson.connection import members
from lamson.names import Names
from lamson.spool import Spool, Spooled, key_time

#: How many keys of a line a routing job reads at once as it follows it.
READ_AHEAD = 16

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
        by_sender: dict[str, dict[str, float]] = {}
        for key, sender in entries:
            sender = sender_of(sender)
            if sender:
                by_sender.setdefault(sender, {})[key] = key_time(key)
        for sender, keys in by_sender.items():  # one ZADD and one EXPIRE per line, however many keys
            pipe.zadd(self._key(sender), keys, nx=True)
            pipe.expire(self._key(sender), LINE_TTL)
        if pipeline is None and by_sender:
            pipe.execute()

    def head(self, sender: str) -> str | None:
        """The key whose turn it is in this sender's line (None: no line)."""
        sender = sender_of(sender)
        if not sender:
            return None
        first = members(self.conn.zrange(self._key(sender), 0, 0))
        return first[0] if first else None

    def heads(self, senders: list[str]) -> list[str | None]:
        """:meth:`head` of each of several (non-null) senders, in one round trip."""
        pipe = self.conn.pipeline(transaction=False)
        for sender in senders:
            pipe.zrange(self._key(sender_of(sender)), 0, 0)
        return [first[0] if first else None for first in map(members, pipe.execute())] if senders else []

    def advance(self, sender: str, handled: list[str], count: int = 1) -> list[str]:
        """Take ``handled`` out of the sender's line and read its first ``count`` keys, in one round trip.

        No MULTI: a message joining the line between the two only makes the answer more recent.
        """
        sender = sender_of(sender)
        if not sender:
            return []
        pipe = self.conn.pipeline(transaction=False)
        if handled:
            pipe.zrem(self._key(sender), *handled)
        pipe.zrange(self._key(sender), 0, count - 1)
        return members(pipe.execute()[-1])

    def done(self, sender: str, key: str) -> str | None:
        """Remove ``key`` from its line; return the key whose turn it is now (or None)."""
        first = self.advance(sender, [key])
        return first[0] if first else None

    def leave(self, handled: dict[str, list[str]]) -> None:
        """Take the handled keys of several lines out of them, in one round trip."""
        pipe = self.conn.pipeline(transaction=False)
        for sender, keys in handled.items():
            if sender_of(sender) and keys:
                pipe.zrem(self._key(sender_of(sender)), *keys)
        if len(pipe):
            pipe.execute()


class Following:
    """The lines one routing job follows: read ahead, left in one go.

    :meth:`done` marks a key handled and names the next one in its sender's
    line, from what was read ahead when it can. :meth:`read` is the
    authoritative answer: it removes the handled keys and reads the line
    again; a job calls it before anyone else must see the line move on (it
    wakes another worker for the next key, or could not claim the key read
    ahead), and :meth:`flush` at its end.
    """

    def __init__(self, lines: Lines, read_ahead: int = READ_AHEAD) -> None:
        self.lines = lines
        self.read_ahead = max(1, read_ahead)
        self._ahead: dict[str, deque[str]] = {}  # sender -> keys read behind the one in hand
        self._handled: dict[str, list[str]] = {}  # sender -> keys handled, still in the line

    def done(self, sender: str, key: str) -> str | None:
        """``key`` was handled: the key whose turn it is now in ``sender``'s line (None: none)."""
        sender = sender_of(sender)
        if not sender:
            return None
        self._handled.setdefault(sender, []).append(key)
        ahead = self._ahead.get(sender)
        while ahead:
            nxt = ahead.popleft()
            if nxt not in self._handled[sender]:
                return nxt
        return self.read(sender)

    def head(self, sender: str) -> str | None:
        """The head of ``sender``'s line as every worker will see it (this job's handled keys removed)."""
        if sender_of(sender) in self._handled:
            return self.read(sender)
        return self.lines.head(sender)

    def read(self, sender: str) -> str | None:
        """Remove the handled keys from ``sender``'s line and read it again; the head, or None."""
        sender = sender_of(sender)
        if not sender:
            return None
        found = self.lines.advance(sender, self._handled.pop(sender, []), self.read_ahead)
        self._ahead[sender] = deque(found[1:])
        return found[0] if found else None

    def flush(self) -> None:
        """Remove every handled key from its line (the end of the job)."""
        handled, self._handled = self._handled, {}
        self._ahead.clear()
        if handled:
            self.lines.leave(handled)


# -- the order protocol of one routing job ---------------------------------------------------------


@dataclass(frozen=True)
class Go:
    """It is this message's turn: handle it (``spooled``: the copy in this job's hands)."""

    spooled: Spooled


@dataclass(frozen=True)
class Wait:
    """An older message of the same sender comes first and is not ours: this one was put back to wait."""


@dataclass(frozen=True)
class Older:
    """An older message of the same sender was waiting: this job claimed it, and handles it first."""

    spooled: Spooled


Turn = Go | Wait | Older


class Order:
    """The whole order protocol of one routing job over one ordered group.

    A routing job asks :meth:`turn` before it handles a message and
    :meth:`next` after; :meth:`not_behind` filters a wake-up's keys before
    claiming, :meth:`flush` ends the job. Everything about senders' lines —
    who is at the head, waiting behind a message in another worker's hands,
    taking the next message of a line, waking another worker for it — is
    here, so the job reads as its steps (docs/design.md, "The routing job").
    ``claim`` takes a key into this job's hands (None: someone else has it;
    the job parks an unreadable record itself), ``wake`` sends a routing
    wake-up for keys of this group (it must not raise for Redis trouble: the
    sweeper wakes them instead).
    """

    #: Looks at a line before giving up and handling the message as it is (a line changing under us).
    TRIES = 10

    def __init__(self, lines: Lines, spool: Spool, worker: str, *, claim: Callable[[str], Spooled | None],
                 wake: Callable[[list[str]], None]) -> None:
        self.lines = lines
        self.spool = spool
        self.worker = worker
        self._claim = claim
        self.wake = wake
        self.following = Following(lines)
        self.heads: set[str] = set()  # keys this job found at the head of their line as it followed it

    def not_behind(self, keys: list[str], senders: list[str]) -> tuple[list[str], int]:
        """The keys of a wake-up worth claiming, and how many were left to the worker following their line.

        A worker following a sender's line takes that sender's waiting messages
        next. Left alone, they are not claimed and released again, and that
        worker never finds one of them held for a moment (which would end its
        run of the line). ``senders`` are a hint: a wrong one costs a detour.
        """
        mine: dict[str, list[str]] = {}
        for key, sender in zip(keys, senders, strict=True):
            if sender_of(sender):
                mine.setdefault(sender_of(sender), []).append(key)
        if not mine:
            return keys, 0
        heads = self.lines.heads(list(mine))
        skip: set[str] = set()
        for waiting, head in zip(mine.values(), heads, strict=True):
            if head is not None and head not in waiting and self.spool.where(head) == "claimed":
                skip.update(waiting)
        return [key for key in keys if key not in skip], len(skip)

    def turn(self, spooled: Spooled) -> Turn:
        """Whose turn it is in ``spooled``'s sender's line: its own, an older waiting one's, or someone else's."""
        sender = spooled.envelope.mail_from
        if not sender_of(sender):
            return Go(spooled)
        if spooled.key in self.heads:
            self.heads.discard(spooled.key)
            return Go(spooled)
        for _ in range(self.TRIES):
            head = self.following.head(sender)
            if head is None or head == spooled.key:
                return Go(spooled)
            if (key_time(head), head) > (key_time(spooled.key), spooled.key):
                return Go(spooled)  # older than the head: it joined the line late (swept back), so it goes now
            where = self.spool.where(head)
            if where == "waiting" and not self.spool.is_due(head):
                # The older one waits for a retry: so does this one. When the older one is
                # handled (its delayed wake-up), its worker takes this one next.
                self.spool.release(spooled, self.worker)
                return Wait()
            if where == "waiting":
                older = self._claim(head)
                if older is not None:
                    return Older(older)
                continue  # someone took it just now: look again
            if where == "claimed":
                # In another worker's hands: wait behind it. That worker takes us next;
                # if it finished while we looked, the head is us now and we go on.
                self.spool.release(spooled, self.worker)
                if self.following.head(sender) == spooled.key:
                    again = self._claim(spooled.key)
                    if again is not None:
                        return Go(again)
                return Wait()
            self.lines.done(sender, head)  # a stale entry: that message is done
        return Go(spooled)

    def next(self, spooled: Spooled, *, take: bool = True) -> Spooled | None:
        """``spooled`` was handled: leave its line; the next message of that sender, claimed, if waiting.

        Messages that stepped back behind this one have no wake-up left: this
        job takes the next one (``take``), or, when it has followed its lines
        long enough, wakes another worker for it (and returns None).
        """
        sender = spooled.envelope.mail_from
        nxt = self.following.done(sender, spooled.key)
        if nxt is None or nxt == spooled.key:
            return None
        if take:
            got = self._claim(nxt)
            if got is None:
                # Someone holds it for a moment (a worker looking for its turn): make the line move on
                # for everyone, so whichever of us looks last takes it.
                nxt = self.following.read(sender)
                got = self._claim(nxt) if nxt is not None and nxt != spooled.key else None
            if got is not None:
                self.heads.add(got.key)  # just read as its line's head: no need to look again
            return got
        nxt = self.following.read(sender)  # the worker woken must find it at the head
        if nxt is not None and nxt != spooled.key:
            self.wake([nxt])
        return None

    def flush(self) -> None:
        """Take the handled keys out of their lines (the end of the job, or before others must see it)."""
        self.following.flush()
