"""The one place that names the job functions between stages and sends wake-ups.

Stages never import each other: the receiver wakes the router workers, and
the router wakes the relay, by dotted job name through these functions. A
wake-up carries spool keys (JSON), never mail: the spool is the record of
the work, so a lost wake-up loses nothing (the sweeper sends another) and a
duplicate does nothing (the key is no longer waiting).
"""

from __future__ import annotations

from typing import Any

import redis

from lamson import rqcompat
from lamson.names import Names
from lamson.settings import DEFAULTS

ROUTE_JOB = "lamson.workers.jobs.route"
SEND_JOB = "lamson.relay.jobs.send"
#: The only functions a Lamson worker runs, whatever a job in Redis names (lamson.rqcompat.WakeUp).
JOB_FUNCTIONS = frozenset({ROUTE_JOB, SEND_JOB})

#: The most messages one routing wake-up carries (the receiver batches what arrives together).
MAX_BATCH = 20
#: The most replies one relay wake-up carries: a fan-out of 1,000 replies is 10 jobs, delivered
#: over one kept-open SMTP session each.
MAX_RELAY_BATCH = 100


def route_timeout(settings: Any, count: int) -> int:
    """A routing wake-up's time limit: each message gets ``job_timeout``, the batch at most an hour."""
    from lamson.typed_settings import Settings

    return min(Settings.of(settings).job_timeout * max(count, 1), 3600)


def wake_router(conn: redis.Redis, names: Names, group: str, keys: list[str], *, timeout: int = DEFAULTS["job_timeout"],
                pipeline: Any = None, delay: float = 0.0, senders: list[str] | None = None) -> rqcompat.Job:
    """Wake a router worker of ``group`` ("incoming" or a deferred queue) for these spool keys.

    No keys: a drain — the worker claims the oldest waiting messages itself. ``senders`` (the
    envelope sender of each key, as the receiver knows them) lets the worker leave alone, without
    even claiming them, keys whose sender's line is in another worker's hands.
    """
    args: list[Any] = [list(keys), group]
    if senders is not None and len(senders) == len(keys):
        args.append(list(senders))
    return rqcompat.enqueue(conn, names.queue(group), ROUTE_JOB, args,
                            timeout=min(timeout * max(len(keys), 1), 3600), pipeline=pipeline, delay=delay,
                            description=f"route {len(keys) or 'waiting'} message(s) of {group}"
                                        + (f" from {keys[0]}" if keys else ""))


def wake_relay(conn: redis.Redis, names: Names, keys: list[str], *, timeout: int = 120,
               pipeline: Any = None, delay: float = 0.0) -> rqcompat.Job:
    """Wake the relay for these outbox keys (no keys: deliver whatever is due)."""
    return rqcompat.enqueue(conn, names.outgoing, SEND_JOB, [list(keys)],
                            timeout=min(timeout * max(len(keys), 1), 3600), pipeline=pipeline, delay=delay,
                            description=f"send {len(keys) or 'due'} message(s)"
                                        + (f" from {keys[0]}" if keys else ""))


def chunks(keys: list[str], size: int = MAX_BATCH) -> list[list[str]]:
    return [keys[i:i + size] for i in range(0, len(keys), size)]
