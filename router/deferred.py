"""Deferred processing: hand a message to another worker group.

The guide's answer to a slow state function is to drop the message in a
queue another Lamson reads. ``defer(message, queue="posts")`` puts the
message in the ``posts`` group's spool (``spool_dir/.posts``, durably, as the
receiver does), in its sender's line, and wakes that group; workers started
with ``lamson worker -queue posts -boot config.posts_boot`` load their own
handler list and route it, with the same lifecycle as incoming mail. (A plain
Maildir ``lamson.queue.Queue`` works too, read by a ``QueueReceiver``.)
"""

from __future__ import annotations

from typing import Any

from lamson import context, groups, queues
from lamson.envelope import Envelope
from lamson.router.routing import bare_address


class DeferNotConfigured(RuntimeError):
    """defer() was called in a process that is not a Lamson worker (no Context installed)."""


def defer(message: Any, queue: str = "posts", *, To: str | None = None, From: str | None = None) -> str:
    """Spool ``message`` for the worker group ``queue`` and wake it; return the spool key.

    ``To``/``From`` override the message's envelope addresses (needed when
    ``message`` is raw bytes).
    """
    ctx = context.get()
    if ctx is None:
        raise DeferNotConfigured(
            "lamson.router.defer() runs in a router worker (it needs the worker's spool and Redis); "
            "in tests, call the deferred handler directly or use a Maildir Queue"
        )
    if not queue or not isinstance(queue, str):
        raise ValueError("defer() needs the name of a worker group")
    group = ctx.names.short(queue)
    if not groups.is_valid_deferred(group):
        raise ValueError(f"defer() needs a worker group name of letters, digits, '-' or '_' (not starting "
                         f"with {groups.QUEUE_PREFIX!r}), not {queue!r}")
    data = message if isinstance(message, bytes | bytearray) else getattr(message, "Data", None)
    if data is None:
        from lamson.queue import as_bytes

        data = as_bytes(message)
    rcpt = bare_address(To if To is not None else getattr(message, "To", None))
    sender = bare_address(From if From is not None else getattr(message, "From", None))
    if not rcpt:
        raise ValueError("defer() needs a recipient: the message has no To (pass To=...)")
    envelope = Envelope(mail_from=sender, rcpt_tos=(rcpt,), peer=str(getattr(message, "Peer", "") or ""),
                        queue=group, extra={"deferred": "1"})
    key: str = ctx.spool(group).put(envelope, bytes(data))
    with ctx.conn.pipeline() as pipe:
        queues.wake_router(ctx.conn, ctx.names, group, [key], timeout=queues.route_timeout(ctx.config, 1),
                           pipeline=pipe)  # first: rq opens the MULTI
        ctx.lines(group).add([(key, sender)], pipeline=pipe)
        pipe.execute()
    return key
