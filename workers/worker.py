"""The router worker process (``lamson worker``): load the application once, then run jobs.

Start-up order matters: settings, Redis, the router's Redis state and locks
(``setup_worker``), then the application's boot module (which loads the
handlers), then one sweep, then rq's loop. Each process is one worker;
scale with supervisord's ``numprocs`` or more hosts on the same spool and Redis.
"""

from __future__ import annotations

import logging

from rq import Queue

from lamson import logs
from lamson import settings as lsettings
from lamson.connection import connect
from lamson.queues import INCOMING, OUTGOING, RESULT_TTL
from lamson.recovery import take_over
from lamson.spool import open_spool
from lamson.workerbase import (
    MAINTENANCE_INTERVAL,
    WORKER_TTL,
    LamsonWorker,
    rq_log_level,
    startup_problems,
    worker_name,
)
from lamson.workers import context
from lamson.workers.sweeper import SweeperThread, sweep

log = logging.getLogger("lamson.workers")

def run(settings_name: str | None = None, root: str | None = None, queues: list[str] | None = None,
        boot: str | None = None, burst: bool = False, name: str | None = None) -> int:
    """Entry point of ``lamson worker``; returns the exit code."""
    logs.setup()
    queue_names = queues or [INCOMING]
    settings = lsettings.load(settings_name, root)
    conn = connect(settings.redis_url)
    for problem in startup_problems(conn):
        log.warning("WARNING: %s", problem)
    spool = open_spool(settings, conn)
    context.install(context.WorkerContext(settings=settings, conn=conn, spool=spool))

    from lamson.router import setup_worker

    setup_worker(conn, settings)
    lsettings.run_boot(settings, boot)

    watch = sorted(set(queue_names) | {INCOMING, OUTGOING})
    sweep_args = dict(spool=spool, conn=conn, grace=settings.sweep_grace, timeout=settings.job_timeout,
                      retries=settings.route_retries, watch_queues=watch)
    try:
        sweep(**sweep_args)
    except Exception as exc:  # Redis down at start: rq's loop waits for it; the thread sweeps later
        log.warning("initial sweep skipped: %s", exc)
    sweeper = SweeperThread(settings.sweep_interval, **sweep_args)
    sweeper.start()

    wname = worker_name("router", name)
    # A predecessor of this name is dead (supervisord restarted us): its jobs run again now.
    take_over(conn, wname, queue_names, max_deaths=settings.max_worker_deaths)
    worker = LamsonWorker(
        [Queue(q, connection=conn) for q in queue_names],
        connection=conn,
        name=wname,
        worker_ttl=WORKER_TTL,
        maintenance_interval=MAINTENANCE_INTERVAL,
        default_result_ttl=RESULT_TTL,
    )
    log.info("router worker %s on %s, spool %r", worker.name, ", ".join(queue_names), spool)
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level=rq_log_level())
    finally:
        sweeper.stop()
    return 0
