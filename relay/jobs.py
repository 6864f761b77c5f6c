"""The delivery job: one outgoing message to the smart host.

Temporary trouble (connection failures, timeouts, 4xx) raises, so rq
retries the job with backoff (the intervals given at enqueue); when those
run out the message is scheduled again at the last interval, until it has
waited ``LIFETIME`` seconds (``relay_lifetime``). Then, and at once for a
permanent refusal (5xx), the sender gets one delivery status notification
(:mod:`lamson.relay.dsn`), sent from ``<>`` through the same smart host, and
the job fails so that ``rq info`` shows what bounced. Mail from ``<>`` never
gets a notification. Recipients refused while others were accepted get a
job (4xx) or a notification (5xx) of their own, so the accepted ones are
not sent twice.
"""

from __future__ import annotations

import logging
import smtplib
import time
from typing import Any

from lamson import queues
from lamson.relay import dsn
from lamson.relay.smtp import Connections, normalise_eol

log = logging.getLogger("lamson.relay")

#: The relay worker process's kept-open sessions (set up by the worker; a default for tests).
CONNECTIONS = Connections()

#: Seconds a message may keep failing temporarily before its sender is told (``relay_lifetime``).
LIFETIME = 5 * 24 * 3600.0

#: Job meta: when the message was first queued (kept across the jobs of one message), and
#: whether its notification went out (so ``rq requeue`` of a bounced job sends no second one).
FIRST_QUEUED = "first_queued"
DSN_SENT = "dsn_sent"


class TemporaryFailure(Exception):
    """The smart host said 'try again later' (4xx) or could not be reached: rq retries."""


class PermanentFailure(Exception):
    """The smart host refused for good (5xx), or the lifetime ran out: the job fails without retries."""


def permanent(text: str) -> PermanentFailure:
    """A PermanentFailure, with the running job's retries cancelled so rq does not retry it."""
    job = current_job()
    if job is not None:
        job.retries_left = 0
    return PermanentFailure(text)


def current_job() -> Any:
    from rq import get_current_job

    return get_current_job()


def first_queued(job: Any) -> float:
    """When the message this job carries was first queued (its age decides the lifetime)."""
    if job is None:
        return time.time()
    since = job.meta.get(FIRST_QUEUED)
    if since is not None:
        return float(since)
    return job.created_at.timestamp() if job.created_at else time.time()


def deliver(data: bytes, mail_from: str, rcpt_tos: list[str], host: str, port: int) -> str:
    """Deliver one message; returns a short outcome for rq's result (not kept)."""
    payload = normalise_eol(data)
    try:
        refused = CONNECTIONS.send(host, port, mail_from, rcpt_tos, payload)
    except smtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients
    except smtplib.SMTPResponseException as exc:
        reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        if 500 <= exc.smtp_code < 600:
            log.error("5xx from %s:%s for %s: %s %s", host, port, rcpt_tos, exc.smtp_code, reply)
            bounce(data, mail_from, [dsn.Failure(r, exc.smtp_code, reply) for r in rcpt_tos], host, port)
            raise permanent(f"{exc.smtp_code} {reply}") from None
        return temporary(data, mail_from, rcpt_tos, host, port, exc.smtp_code, reply)
    except (smtplib.SMTPException, OSError) as exc:
        return temporary(data, mail_from, rcpt_tos, host, port, 0, f"cannot deliver to {host}:{port}: {exc!r}")

    deferred = [r for r, (code, _) in refused.items() if code < 500]
    failed = [r for r, (code, _) in refused.items() if code >= 500]
    if failed:
        log.error("5xx for %s: %s", failed, describe({r: refused[r] for r in failed}))
        bounce(data, mail_from, [dsn.Failure(r, refused[r][0], refused[r][1].decode("utf-8", "replace"))
                                 for r in failed], host, port)
    accepted = len(rcpt_tos) - len(refused)
    if deferred and accepted == 0 and not failed:
        return temporary(data, mail_from, rcpt_tos, host, port, refused[deferred[0]][0], describe(refused))
    if deferred:
        requeue_temporary(data, mail_from, deferred, host, port)
    if accepted == 0 and not deferred:
        raise permanent(describe(refused))
    log.info("delivered from=<%s> to %d of %d recipient(s) via %s:%s", mail_from, accepted, len(rcpt_tos), host, port)
    return f"accepted {accepted}, temporary {len(deferred)}, permanent {len(failed)}"


def temporary(data: bytes, mail_from: str, rcpts: list[str], host: str, port: int, code: int, text: str) -> str:
    """Try again later, or give up and tell the sender once the lifetime is over."""
    job = current_job()
    since = first_queued(job)
    if time.time() - since >= LIFETIME:
        log.error("giving up on %s after %.0fs of temporary failures: %s %s", rcpts, time.time() - since, code, text)
        bounce(data, mail_from, [dsn.Failure(r, code, text) for r in rcpts], host, port, expired=True)
        raise permanent(f"lifetime of {LIFETIME:.0f}s over; last: {code} {text}")
    if job is not None and not job.retries_left:
        # rq would fail it now; the lifetime, not the retry list, decides when to give up.
        requeue_temporary(data, mail_from, rcpts, host, port, last_interval=True)
        return f"rescheduled after {code} {text}"
    raise TemporaryFailure(f"{code} {text}" if code else text)


def requeue_temporary(data: bytes, mail_from: str, rcpts: list[str], host: str, port: int, *,
                      last_interval: bool = False) -> None:
    """A new job for recipients the server deferred, keeping the message's first-queued time."""
    job = current_job()
    if job is None:
        raise TemporaryFailure(f"deferred recipients {rcpts} and no rq job to requeue from")
    retries = list(job.retry_intervals or [30])
    if last_interval:
        retries = retries[-1:]
    new = queues.enqueue_delivery(job.connection, data, mail_from, rcpts, host=host, port=port, retries=retries,
                                  delay=retries[0])
    new.meta[FIRST_QUEUED] = first_queued(job)
    new.save_meta()  # before it is due: it was scheduled ``delay`` seconds ahead
    log.warning("recipients %s deferred by %s:%s; queued again in %ss", rcpts, host, port, retries[0])


def bounce(data: bytes, mail_from: str, failures: list[dsn.Failure], host: str, port: int, *,
           expired: bool = False) -> bool:
    """Queue one notification to the sender (never for ``<>``, never twice for one job)."""
    if not mail_from:
        log.warning("no delivery status notification for %s: the sender was <>", [f.recipient for f in failures])
        return False
    job = current_job()
    if job is None:
        log.error("cannot send a delivery status notification outside a relay job")
        return False
    if job.meta.get(DSN_SENT):
        return False
    report = dsn.build(data, mail_from, failures, remote=f"{host}:{port}", expired=expired, arrived=first_queued(job))
    queues.enqueue_delivery(job.connection, report.as_bytes(), "", [mail_from], host=host, port=port,
                            retries=list(job.retry_intervals or [30]))
    job.meta[DSN_SENT] = True
    job.save_meta()
    log.warning("delivery status notification queued for <%s> about %s", mail_from, [f.recipient for f in failures])
    return True


def describe(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"<{r}> {code} {msg.decode('utf-8', 'replace')}" for r, (code, msg) in refused.items())
