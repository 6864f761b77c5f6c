"""Worker groups: what kind of mail a group of workers handles, and so how.

Every spool key belongs to one group, and each group is served by its own rq
queue (``lamson-incoming``, ``lamson-posts``, ...). What a group is decides
how its mail is handled, so it is said once, here, instead of being read
back from a name's prefix wherever it matters:

* ``incoming``: what the receiver accepted; per-sender order (lamson.order),
  sender authentication;
* a deferred group (``defer(message, "posts")``): spool records written by a
  handler; per-sender order, no sender authentication (the receiver's
  results were for the original message);
* a Maildir queue group (``QueueReceiver("run/posts")``, named ``q-posts``):
  plain mail anyone may drop in the folder; no order (Lamson 1.x queues had
  none), an optional size limit;
* ``outgoing``: replies, the relay's.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from pathlib import Path

#: The prefix of a Maildir queue group's name: a deferred group cannot have it (see :func:`is_valid_deferred`).
QUEUE_PREFIX = "q-"

_SLUG = re.compile(r"[^a-z0-9_-]+")


class Kind(enum.Enum):
    INCOMING = "incoming"
    DEFERRED = "deferred"
    QUEUE = "queue"
    OUTGOING = "outgoing"


@dataclass(frozen=True)
class Group:
    """One worker group: its name (rq queue ``NAMESPACE-name``) and its kind."""

    name: str
    kind: Kind
    #: Bytes above which a message is parked instead of routed (0: no limit; Maildir queues only).
    size_limit: int = 0

    @property
    def ordered(self) -> bool:
        """Whether one sender's messages are handled in the order they were accepted."""
        return self.kind in (Kind.INCOMING, Kind.DEFERRED)

    @property
    def authenticated(self) -> bool:
        """Whether SPF/DKIM/DMARC are computed before routing (mail that came in over SMTP)."""
        return self.kind is Kind.INCOMING

    @property
    def routed(self) -> bool:
        """Router workers handle it (every group but the relay's)."""
        return self.kind is not Kind.OUTGOING


INCOMING = Group("incoming", Kind.INCOMING)
OUTGOING = Group("outgoing", Kind.OUTGOING)


def named(name: str, *, size_limit: int = 0) -> Group:
    """The group a name stands for (a spool record's ``queue``, a wake-up's group, ``-queue`` of a worker)."""
    if name == "incoming":
        return INCOMING
    if name == "outgoing":
        return OUTGOING
    if name.startswith(QUEUE_PREFIX):
        return Group(name, Kind.QUEUE, size_limit)
    return Group(name, Kind.DEFERRED)


def queue_group(queue_dir: str | os.PathLike[str]) -> str:
    """The group that serves a Maildir queue: ``q-`` and the folder's name (``run/posts`` → ``q-posts``)."""
    name = _SLUG.sub("-", Path(queue_dir).name.lower()).strip("-") or "queue"
    return QUEUE_PREFIX + name[:40]


def is_valid_deferred(name: str) -> bool:
    """Whether ``name`` may be a deferred group: letters, digits, ``-``, ``_``; not a reserved name."""
    return (bool(name) and name not in ("incoming", "outgoing") and not name.startswith(QUEUE_PREFIX)
            and name.replace("_", "").replace("-", "").isalnum())
