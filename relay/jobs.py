"""The delivery job: one outgoing message to the smart host.

Temporary trouble (connection failures, timeouts, 4xx) raises, so rq
retries the job with backoff (the intervals given at enqueue). Recipients
refused with 4xx while others were accepted get a job of their own, so the
accepted ones are not sent twice. Permanent refusals (5xx) are not retried.
"""

from __future__ import annotations

import logging
import smtplib

from lamson import queues
from lamson.relay.smtp import Connections, normalise_eol

log = logging.getLogger("lamson.relay")

#: The relay worker process's kept-open sessions (set up by the worker; a default for tests).
CONNECTIONS = Connections()


class TemporaryFailure(Exception):
    """The smart host said 'try again later' (4xx) or could not be reached: rq retries."""


class PermanentFailure(Exception):
    """The smart host refused for good (5xx): the job fails without retries."""


def permanent(text: str) -> PermanentFailure:
    """A PermanentFailure, with the running job's retries cancelled so rq does not retry it."""
    from rq import get_current_job

    job = get_current_job()
    if job is not None:
        job.retries_left = 0
    return PermanentFailure(text)


def deliver(data: bytes, mail_from: str, rcpt_tos: list[str], host: str, port: int) -> str:
    """Deliver one message; returns a short outcome for rq's result (not kept)."""
    payload = normalise_eol(data)
    try:
        refused = CONNECTIONS.send(host, port, mail_from, rcpt_tos, payload)
    except smtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients
        if all(500 <= code < 600 for code, _ in refused.values()):
            log.error("5xx for every recipient %s: %s", rcpt_tos, describe(refused))
            raise permanent(describe(refused)) from None
        raise TemporaryFailure(describe(refused)) from None
    except smtplib.SMTPResponseException as exc:
        text = f"{exc.smtp_code} {exc.smtp_error!r}"
        if 500 <= exc.smtp_code < 600:
            log.error("5xx from %s:%s for %s: %s", host, port, rcpt_tos, text)
            raise permanent(text) from None
        raise TemporaryFailure(text) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TemporaryFailure(f"cannot deliver to {host}:{port}: {exc}") from None

    temporary = [r for r, (code, _) in refused.items() if 400 <= code < 500]
    refused_5xx = [r for r, (code, _) in refused.items() if code >= 500]
    if refused_5xx:
        log.error("5xx for %s: %s", refused_5xx, describe({r: refused[r] for r in refused_5xx}))
    if temporary:
        requeue_temporary(data, mail_from, temporary, host, port)
    accepted = len(rcpt_tos) - len(refused)
    log.info("delivered from=<%s> to %d of %d recipient(s) via %s:%s", mail_from, accepted, len(rcpt_tos), host, port)
    return f"accepted {accepted}, temporary {len(temporary)}, permanent {len(refused_5xx)}"


def requeue_temporary(data: bytes, mail_from: str, rcpts: list[str], host: str, port: int) -> None:
    """A new job, with its own retries, for recipients the server deferred."""
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        raise TemporaryFailure(f"deferred recipients {rcpts} and no rq job to requeue from")
    retries = list(job.retry_intervals or [30])
    queues.enqueue_delivery(job.connection, data, mail_from, rcpts, host=host, port=port, retries=retries,
                            delay=retries[0])
    log.warning("recipients %s deferred by %s:%s; queued again", rcpts, host, port)


def describe(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"<{r}> {code} {msg.decode('utf-8', 'replace')}" for r, (code, msg) in refused.items())
