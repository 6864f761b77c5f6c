"""The router worker process (``lamson worker``): load the application once, then run wake-ups.

Start-up order matters: settings, Redis and the process's Context, the
router's Redis state and locks (``setup_worker``), then the application's
boot module (which loads the handlers), then the shared worker loop
(:func:`lamson.workerbase.work`: liveness, sweeps, rq). Each process is one
worker; scale with supervisord's ``numprocs`` or more hosts on the same spool
and Redis.
"""

from __future__ import annotations

import logging

from lamson import logs
from lamson import settings as lsettings
from lamson.workerbase import build_context, work
from lamson.workers.queue_receiver import QueueReceiver, serve

log = logging.getLogger("lamson.workers")


def run(settings_name: str | None = None, root: str | None = None, queues: list[str] | None = None,
        boot: str | None = None, burst: bool = False, name: str | None = None) -> int:
    """Entry point of ``lamson worker``; returns the exit code.

    ``queues`` are worker groups ("incoming", or a deferred queue such as
    "posts"); an rq queue name of this namespace ("lamson-posts") works too.
    ``name`` is accepted for compatibility and ignored: worker ids are made
    unique per process (lamson.liveness).
    """
    logs.setup()
    settings = lsettings.load(settings_name, root)
    ctx = build_context(settings, "router")
    groups = [ctx.names.short(q) for q in (queues or ["incoming"])]

    from lamson.router import setup_worker

    setup_worker(ctx.conn, settings)
    lsettings.run_boot(settings, boot)
    receiver = getattr(settings, "receiver", None)
    if isinstance(receiver, QueueReceiver):  # a queue boot (the guide's config/queue.py)
        log.info("serving the Maildir queue %s as worker group %s", receiver.queue_dir, receiver.group)
        return serve(ctx, receiver, burst=burst)
    return work(ctx, groups, burst=burst)
