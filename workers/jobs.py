"""The routing job's entry point for rq: a thin adapter from a wake-up to :mod:`lamson.workers.routing_job`.

rq calls it by its dotted name (``lamson.queues.ROUTE_JOB``) with the
worker's runtime first (lamson.rqcompat hands it over) and the wake-up's
JSON arguments after: the spool keys, their group, and optionally their
senders. Arguments written into Redis by anyone are checked here, before
anything is claimed.
"""

from __future__ import annotations

import logging

from lamson.runtime import Runtime
from lamson.workers.routing_job import MAX_CHAIN, Outcome, RoutingJob

log = logging.getLogger("lamson.workers")

__all__ = ["MAX_CHAIN", "Outcome", "RoutingJob", "route"]


def route(runtime: Runtime, keys: list[str], group: str = "incoming", senders: list[str] | None = None) -> str:
    """Route the spooled messages ``keys`` of ``group`` (none: the oldest waiting ones); the job's summary.

    ``senders``, when the wake-up carries them, are only a hint (which lines to look at before
    claiming anything): a wrong one costs a detour, never a message.
    """
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or not isinstance(group, str):
        log.error("malformed routing wake-up dropped: keys=%r group=%r", keys, group)
        return "malformed"
    if not (isinstance(senders, list) and len(senders) == len(keys) and all(isinstance(s, str) for s in senders)):
        senders = None
    return RoutingJob(runtime, runtime.group(group)).run(keys, senders)
