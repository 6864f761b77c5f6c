"""The guide's "Deferred Processing To Queues": a worker group that consumes a Maildir queue.

A handler drops a message into a queue (``Queue("run/posts").push(message)``)
and another Lamson process, booted with its own handlers, routes what lands
there. In Lamson 1.x that process polled the directory; here it is a router
worker on the queue's own rq queue, with the spool's lifecycle: a message is
claimed by renaming it into ``cur/KEY,WORKER``, removed when routed, put back
when its worker dies, parked in ``undeliverable_dir`` with the reason after
``max_attempts``. ``Queue.push`` inside a Lamson worker wakes it at once when
a QueueReceiver serves that queue; anything else that writes into the folder
(a script, another host without Redis) is found by its sweep, every
``sleep`` seconds; what the folder holds when the receiver starts (new/, and
cur/ messages a mail reader has read) is taken at once (:func:`take_over`).

A queue boot reads as in the guide::

    settings.receiver = QueueReceiver(settings.queue_config["queue"], settings.queue_config["sleep"])
    Router.load(settings.queue_handlers)

and runs with ``lamson worker -boot config.queue`` (the ``queue`` program of
the generated deploy/supervisord.conf). Messages in a queue are plain mail,
routed by their To header (1.x: ``ROUTABLE_TO_HEADER``) with the From header
as sender; they carry no per-sender order (1.x queues were not FIFO either).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from lamson.groups import Group, Kind
from lamson.names import Names
from lamson.queue import queue_group, receivers_key
from lamson.typed_settings import Settings

if TYPE_CHECKING:
    from lamson.runtime import Runtime

log = logging.getLogger("lamson.workers")


def announce(conn: redis.Redis, names: Names, group: str) -> None:
    """Tell handlers' ``Queue.push`` that this group has a receiver to wake."""
    conn.sadd(receivers_key(names), group)


class QueueReceiver:
    """Lamson 1.x's ``QueueReceiver(queue_dir, sleep=10, size_limit=0, oversize_dir=None)``.

    Built in a queue boot module, it tells the worker process which Maildir
    to serve. ``sleep`` is how often the folder is swept for messages nobody
    woke the workers for; ``size_limit`` (bytes, 0: none) parks bigger
    messages instead of routing them (``oversize_dir`` is accepted and, as
    there, where they go: by default the undeliverable queue).
    """

    def __init__(self, queue_dir: str | os.PathLike[str], sleep: float = 10, size_limit: int = 0,
                 oversize_dir: str | os.PathLike[str] | None = None) -> None:
        self.queue_dir = Path(queue_dir)
        self.sleep = float(sleep)
        self.size_limit = int(size_limit)
        self.oversize_dir = Path(oversize_dir) if oversize_dir is not None else None
        self.group = queue_group(self.queue_dir)

    def spool(self, settings: Settings | Any) -> Any:
        """The queue folder as a spool of plain messages, parking where the settings say."""
        from lamson.spool import MaildirSpool

        parked = self.oversize_dir or Path(Settings.of(settings).undeliverable_dir)
        return MaildirSpool(self.queue_dir, group=self.group, parked=parked, plain=True)

    def start(self, one_shot: bool = False) -> int:
        """Serve the queue in this process (1.x's API): until stopped, or until it is empty with ``one_shot``."""
        from lamson import context
        from lamson.runtime import build_runtime

        ctx = context.get()
        if ctx is None:
            from lamson import settings as lsettings

            ctx = build_runtime(lsettings.load(), "queue")
        return serve(ctx, self, burst=one_shot)

    def __repr__(self) -> str:
        return f"QueueReceiver({str(self.queue_dir)!r}, sleep={self.sleep:g})"


def serve(ctx: Runtime, receiver: QueueReceiver, *, burst: bool = False) -> int:
    """Run this worker process on a queue: its spool registered, announced, swept every ``sleep`` seconds."""
    from dataclasses import replace

    from lamson.workerbase import work

    ctx.spools[receiver.group] = receiver.spool(ctx.config)
    ctx.groups[receiver.group] = Group(receiver.group, Kind.QUEUE, receiver.size_limit)
    config = ctx.config
    ctx.configure(replace(config, sweep_interval=min(float(config.sweep_interval), receiver.sleep),
                          sweep_grace=min(float(config.sweep_grace), receiver.sleep)))
    announce(ctx.conn, ctx.names, receiver.group)
    take_over(ctx, receiver)
    return work(ctx, [receiver.group], burst=burst)


def take_over(ctx: Runtime, receiver: QueueReceiver) -> int:
    """Wake the workers now for every message already in the folder; return how many.

    Lamson 1.x's QueueReceiver began by reading every key of its Maildir
    (new/ and cur/), so whatever waited there was routed and the queue's
    ``count()`` was 0 afterwards — also for ``start(one_shot=True)``. The
    sweep alone wakes only messages older than its grace, so a burst
    worker (``one_shot``) would end at once with the folder still full, and a
    long-running one would wait up to ``sleep`` seconds. A message another
    program has read (a mail reader moves it to cur/ with a ``:2,`` info
    suffix) is not a worker's claim: it goes back to new/ so it is routed too.
    """
    from lamson import sweeper

    adopted = _adopt_read_messages(receiver.queue_dir)
    spool = ctx.spool(receiver.group)
    keys = spool.waiting(due=True)
    if keys:
        sweeper.wake(ctx, receiver.group, keys)
        log.info("%s: %d message(s) already waiting (%d read by another program) handed to the workers",
                 receiver.queue_dir, len(keys), adopted)
    return len(keys)


def _adopt_read_messages(folder: Path) -> int:
    """Move cur/ messages with a Maildir info suffix (``KEY:2,FLAGS``: read, not claimed) back to new/KEY."""
    moved = 0
    try:
        names = os.listdir(folder / "cur")
    except FileNotFoundError:
        return 0
    for name in names:
        key, sep, _flags = name.partition(":2,")
        if not sep or not key or os.path.exists(folder / "new" / key):
            continue
        try:
            os.rename(folder / "cur" / name, folder / "new" / key)
        except FileNotFoundError:  # another worker of the group took it over first
            continue
        moved += 1
    return moved
