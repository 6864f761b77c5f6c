"""The routing job: spool key in, handlers run, spool entry removed.

Running a job twice is harmless: a key that is gone means the work was done.
The message leaves the spool only after every recipient has been routed, so
a worker killed mid-job leaves it to be retried (at-least-once).
"""

from __future__ import annotations

import logging

from lamson.queue import Queue
from lamson.spool import Spooled
from lamson.workers.context import current

log = logging.getLogger("lamson.workers")

#: Recipients already routed for a message whose job stopped part-way (ConversationBusy).
PROGRESS_KEY = "lamson:progress:"
PROGRESS_TTL = 7 * 24 * 3600


def route_message(spool_key: str) -> str:
    """Route one spooled message to the handlers, once per envelope recipient."""
    from lamson.mail import MailRequest, screen
    from lamson.router import ConversationBusy, Router

    ctx = current()
    spooled = ctx.spool.get(spool_key)
    if spooled is None:
        log.info("%s: already routed (not in the spool)", spool_key)
        return "gone"
    env = spooled.envelope
    reason = screen(spooled.data)
    if reason:
        quarantine(spooled, reason)
        return "quarantined"

    several = len(env.rcpt_tos) > 1
    progress = PROGRESS_KEY + spool_key
    done = {r.decode() for r in ctx.conn.smembers(progress)} if several else set()
    for rcpt in env.rcpt_tos:
        if rcpt in done:
            continue
        message = MailRequest(env.peer, env.mail_from, rcpt, spooled.data)
        try:
            Router.deliver(message)
        except ConversationBusy as exc:
            # Left in the spool: the sweeper enqueues it again; delayed, not failed.
            log.info("%s: conversation busy (%s); will retry", env.id, exc)
            return "busy"
        if several:
            ctx.conn.pipeline().sadd(progress, rcpt).expire(progress, PROGRESS_TTL).execute()
    ctx.spool.remove(spool_key)
    if several:
        ctx.conn.delete(progress)
    log.info("%s: routed to %d recipient(s)", env.id, len(env.rcpt_tos))
    return "routed"


def route_messages(spool_keys: list[str]) -> str:
    """Route a batch of spooled messages (what the receiver accepted together), one by one.

    Each message is routed and removed from the spool on its own, as
    :func:`route_message` does, so a batch cut short (a killed worker, Redis
    gone) only leaves the rest to do. What goes wrong with one message stays
    with it: a message that raises outside the handlers is given a job of its
    own (with its own retries and, in the end, its own entry in rq's failed
    registry), and a batch whose worker died is split into one job per
    message before anything else runs, so a message that kills workers can
    only take itself down.
    """
    from rq import get_current_job

    from lamson import queues
    from lamson.recovery import DEATHS
    from lamson.router import INFRASTRUCTURE_ERRORS

    ctx = current()
    job = get_current_job()
    origin = job.origin if job is not None else queues.INCOMING
    settings = ctx.settings
    if job is not None and job.meta.get(DEATHS):
        left = [key for key in spool_keys if ctx.spool.get(key) is not None]
        for key in left:
            queues.enqueue_route(ctx.conn, key, queue=origin, timeout=settings.job_timeout,
                                 retries=settings.route_retries)
        ctx.conn.hdel(queues.ROUTING_INDEX, *spool_keys)
        log.warning("batch of %d: a worker died running it; split into %d single jobs", len(spool_keys), len(left))
        return "split"
    outcomes: dict[str, int] = {}
    for key in spool_keys:
        try:
            outcome = route_message(key)
        except INFRASTRUCTURE_ERRORS:
            raise  # Redis trouble: the whole job is retried; what was routed is already gone from the spool
        except Exception as exc:
            log.error("%s: %s outside the handlers; it gets a routing job of its own", key, exc)
            queues.enqueue_route(ctx.conn, key, queue=origin, timeout=settings.job_timeout,
                                 retries=settings.route_retries)
            outcome = "own job"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    ctx.conn.hdel(queues.ROUTING_INDEX, *spool_keys)
    return ", ".join(f"{n} {what}" for what, n in outcomes.items())


def quarantine(spooled: Spooled, reason: str) -> None:
    """Move a message no handler should see into the undeliverable queue, with the reason."""
    ctx = current()
    safe_reason = reason.replace("\r", " ").replace("\n", " ")[:500]
    header = f"X-Lamson-Quarantined: {safe_reason}\r\nX-Lamson-Envelope: {spooled.envelope.to_json().decode()}\r\n"
    key = Queue(ctx.settings.undeliverable_dir).push(header.encode("utf-8", "replace") + spooled.data)
    ctx.spool.remove(spooled.key)
    log.warning("%s: quarantined as %s in %s: %s", spooled.envelope.id, key, ctx.settings.undeliverable_dir, reason)
