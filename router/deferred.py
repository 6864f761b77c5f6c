"""Deferred processing: hand a message to another worker group through rq.

The guide's answer to a slow state function is to drop the message in a
queue another Lamson reads. ``defer(message, queue="posts")`` spools the
message (durably, like the receiver does) and enqueues its routing job on
the rq queue ``posts``; workers started with
``lamson worker -queue posts -boot config.posts_boot`` load their own
handler list and route it. (A plain Maildir ``lamson.queue.Queue`` works
too, for processes that poll a directory.)
"""

from __future__ import annotations

from typing import Any

from lamson.envelope import Envelope
from lamson.queues import enqueue_route
from lamson.router.routing import Router, bare_address
from lamson.spool import open_spool


class DeferNotConfigured(RuntimeError):
    """defer() was called in a process whose Router has no Redis (no setup_worker)."""


def defer(message: Any, queue: str = "posts", *, To: str | None = None, From: str | None = None) -> str:
    """Spool ``message`` and enqueue it for the worker group on ``queue``; return the spool key.

    ``To``/``From`` override the message's envelope addresses (needed when
    ``message`` is raw bytes).
    """
    settings, conn = Router.SETTINGS, Router.REDIS
    if settings is None or conn is None:
        raise DeferNotConfigured(
            "lamson.router.defer() needs a router worker (setup_worker gives the Router its Redis "
            "connection and settings); in tests, call the deferred handler directly or use a Maildir Queue"
        )
    if not queue or not isinstance(queue, str):
        raise ValueError("defer() needs the name of an rq queue")
    data = message if isinstance(message, bytes | bytearray) else getattr(message, "Data", None)
    if data is None:
        from lamson.queue import as_bytes

        data = as_bytes(message)
    rcpt = bare_address(To if To is not None else getattr(message, "To", None))
    sender = bare_address(From if From is not None else getattr(message, "From", None))
    if not rcpt:
        raise ValueError("defer() needs a recipient: the message has no To (pass To=...)")
    envelope = Envelope(mail_from=sender, rcpt_tos=(rcpt,), peer=str(getattr(message, "Peer", "") or ""),
                        queue=queue, extra={"deferred": "1"})
    key = open_spool(settings, conn).put(envelope, bytes(data))
    enqueue_route(conn, key, queue=queue, timeout=int(getattr(settings, "job_timeout", 45)),
                  retries=list(getattr(settings, "route_retries", [10, 60, 300])))
    return key
