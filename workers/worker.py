"""The router worker process (``lamson worker``): load the application once, then run wake-ups.

Start-up order matters: settings, then the process's runtime
(:func:`lamson.runtime.build_runtime`: Redis, the router's state and locks in
Redis), then the application's boot module (which loads the handlers into
that router), then the shared worker loop
(:func:`lamson.workerbase.work`: liveness, sweeps, rq). Each process is one
worker; scale with supervisord's ``numprocs`` or more hosts on the same spool
and Redis.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from lamson import health, logs
from lamson import settings as lsettings
from lamson.recycle import reserve_files
from lamson.runtime import Runtime, build_runtime
from lamson.workerbase import lower_priority, work
from lamson.workers import admission
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
    logs.setup(settings=settings)  # its log_format
    lower_priority(settings)
    ctx = build_runtime(settings, "router")
    groups = [ctx.names.short(q) for q in (queues or ["incoming"])]
    reserve_files(ctx.outbox, settings)  # replies of a burst reuse files instead of creating them
    if not boot_until_loaded(settings, boot, ctx=ctx):
        return 0
    receiver = getattr(settings, "receiver", None)
    if isinstance(receiver, QueueReceiver):  # a queue boot (the guide's config/queue.py)
        log.info("serving the Maildir queue %s as worker group %s", receiver.queue_dir, receiver.group)
        return serve(ctx, receiver, burst=burst)
    return work(ctx, groups, burst=burst)


def boot_until_loaded(settings: Any, boot: str | None, *, ctx: Runtime, delay: float | None = None) -> bool:
    """Run the application's boot; while it fails (a handler with a syntax error, a missing import), say
    why and try again every ``boot_retry`` seconds, until it loads (True) or the process is told to stop.

    Exiting instead would have supervisord restart the worker a few times in
    quick succession and then give up (FATAL): after the fix nothing would
    run until an operator noticed. Between tries the application's modules
    are forgotten, so the next import reads the files again.

    supervisord shows such a worker RUNNING, so it also reports
    the failure in Redis (lamson.health: ``lamson status`` and ``/health``
    read it), refreshed every third of ``worker_ttl`` while it waits, and
    withdrawn when the load succeeds or the worker stops.
    """
    config = ctx.config
    router = ctx.routes()
    delay = float(delay if delay is not None else config.boot_retry)
    ttl = float(config.worker_ttl)
    root = str(lsettings.project_root())
    stop = threading.Event()
    failed = False
    while True:
        try:
            lsettings.run_boot(settings, boot)
            admission.checks(config)  # the application's admission_checks import (or fail like a load)
            if failed:
                health.clear_load_failure(ctx.conn, ctx.names, ctx.worker_id)
                log.info("the application loaded: this worker routes now")
            return True
        except Exception as exc:
            failed = True
            error = f"{type(exc).__name__}: {exc}"
            log.exception("cannot load the application (%s); fix it: this worker tries again every %.0fs",
                          error, delay)
        router.clear_routes()
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None) or ""
            keep = module is settings or settings.__name__.startswith(name + ".")  # the settings and their package
            if path.startswith(root + os.sep) and not keep and "site-packages" not in path:
                del sys.modules[name]
        importlib.invalidate_caches()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            deadline = time.monotonic() + delay
            while True:
                health.report_load_failure(ctx.conn, ctx.names, ctx.worker_id, error, ttl)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if stop.wait(min(left, max(ttl / 3, 0.5))):
                    health.clear_load_failure(ctx.conn, ctx.names, ctx.worker_id)
                    return False
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

