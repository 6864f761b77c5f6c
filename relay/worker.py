"""The relay worker process (``lamson relay``): rq SimpleWorker on ``lamson-outgoing``.

No fork per job, so the SMTP session to the smart host stays open between
jobs. It runs rq's scheduler too, which is what brings retried deliveries
back after their backoff interval.
"""

from __future__ import annotations

import logging

from rq import Queue

from lamson import logs
from lamson import settings as lsettings
from lamson.connection import connect
from lamson.queues import OUTGOING, RESULT_TTL
from lamson.recovery import take_over
from lamson.relay import jobs
from lamson.relay.smtp import Connections
from lamson.workerbase import (
    MAINTENANCE_INTERVAL,
    WORKER_TTL,
    LamsonWorker,
    rq_log_level,
    startup_problems,
    worker_name,
)

log = logging.getLogger("lamson.relay")


def run(settings_name: str | None = None, root: str | None = None, burst: bool = False,
        name: str | None = None) -> int:
    """Entry point of ``lamson relay``; returns the exit code."""
    logs.setup()
    settings = lsettings.load(settings_name, root)
    conn = connect(settings.redis_url)
    for problem in startup_problems(conn):
        log.warning("WARNING: %s", problem)
    jobs.CONNECTIONS = Connections(timeout=settings.relay_timeout)
    jobs.LIFETIME = float(settings.relay_lifetime)
    wname = worker_name("relay", name)
    # A predecessor of this name is dead (supervisord restarted us): its jobs run again now.
    take_over(conn, wname, [OUTGOING], max_deaths=settings.max_worker_deaths)
    worker = LamsonWorker(
        [Queue(OUTGOING, connection=conn)],
        connection=conn,
        name=wname,
        worker_ttl=WORKER_TTL,
        maintenance_interval=MAINTENANCE_INTERVAL,
        default_result_ttl=RESULT_TTL,
    )
    log.info("relay worker %s delivering %s", worker.name, OUTGOING)
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level=rq_log_level())
    finally:
        jobs.CONNECTIONS.close_all()
    return 0
