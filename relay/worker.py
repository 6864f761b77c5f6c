"""The relay worker process (``lamson relay``): delivers the outbox to the smart host.

A stock rq SimpleWorker (no fork per job, so the SMTP session to the smart
host stays open between jobs) on the namespace's ``outgoing`` queue, with
the shared worker start-up (:mod:`lamson.workerbase`). It runs rq's
scheduler too, which brings delayed wake-ups of retries back when due.
"""

from __future__ import annotations

import logging

from lamson import logs
from lamson import settings as lsettings
from lamson.relay.smtp import Connections
from lamson.runtime import build_runtime
from lamson.workerbase import lower_priority, work

log = logging.getLogger("lamson.relay")


def run(settings_name: str | None = None, root: str | None = None, burst: bool = False,
        name: str | None = None) -> int:
    """Entry point of ``lamson relay``; returns the exit code (``name`` is accepted and ignored)."""
    logs.setup()
    settings = lsettings.load(settings_name, root)
    logs.setup(settings=settings)  # its log_format
    lower_priority(settings)
    ctx = build_runtime(settings, "relay")
    ctx.smtp = Connections(timeout=float(ctx.config.relay_timeout))
    try:
        return work(ctx, ["outgoing"], burst=burst)
    finally:
        ctx.smtp.close_all()
