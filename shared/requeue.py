"""Sending a parked message back through the pipeline.

A parked record (:mod:`lamson.parked`) keeps the envelope the message had
when it was set aside, group included. Once the cause is fixed,
:func:`requeue` puts the message back where it came from, its attempt count
started again: incoming mail and a deferred group's (``posts``, see
lamson.router.deferred) into that group's spool, in its sender's line, with
its routing wake-up; a Maildir queue's (``q-NAME``) into that folder, for
its QueueReceiver; a reply into the outbox, with the relay's wake-up.
"""

from __future__ import annotations

from types import ModuleType

import redis

from lamson import groups, queues
from lamson.envelope import Envelope
from lamson.groups import Kind
from lamson.names import names_for
from lamson.order import Lines
from lamson.parked import QUEUE_DIR, NotParked, read
from lamson.queue import receivers_key
from lamson.spool import MaildirSpool, Spool, open_spool

__all__ = ["NotParked", "destination", "requeue", "untag"]


def untag(data: bytes) -> tuple[Envelope, bytes]:
    """Lamson 1.x-era name kept for callers: the envelope (attempts at 0) and the message of a parked record.

    Raises :class:`NotParked` when the record has no envelope (lamson.parked.read says why).
    """
    found = read(data)
    return found.sent_back(), found.message


def _queue_dir(envelope: Envelope) -> str:
    folder = envelope.extra.get(QUEUE_DIR) or envelope.peer
    if not folder:
        raise NotParked(f"parked from the Maildir queue group {envelope.queue!r} without its folder")
    return folder


def destination(envelope: Envelope) -> str:
    """Where :func:`requeue` puts a message with this envelope, in words (what ``lamson queue`` says)."""
    if envelope.queue == "outgoing":
        return "the outbox"
    if groups.named(envelope.queue).kind is Kind.QUEUE:
        return f"the Maildir queue {_queue_dir(envelope)}"
    return f"the {envelope.queue} spool"


def _spool(envelope: Envelope, settings: ModuleType, conn: redis.Redis) -> Spool:
    """The spool of the message's group; a Maildir queue's is its own folder, wherever that is.

    A Maildir queue (``q-NAME``, lamson.groups) is a folder the application named, not a folder of the spool
    (open_spool would make one up under ``spool_dir``). Its spool reads plain mail and spool
    records alike, so the message goes back with its envelope: to the recipient it was parked for,
    not to every address in its To header.
    """
    if groups.named(envelope.queue).kind is Kind.QUEUE:
        return MaildirSpool(_queue_dir(envelope), group=envelope.queue, plain=True)
    return open_spool(settings, conn, envelope.queue or "incoming")


def requeue(data: bytes, settings: ModuleType, conn: redis.Redis) -> str:
    """Put the parked message back where it came from and wake its workers; returns the new key.

    Raises :class:`NotParked` when ``data`` is not a parked record with an envelope.
    """
    envelope, message = untag(data)
    names = names_for(settings)
    group = groups.named(envelope.queue or "incoming")
    key = _spool(envelope, settings, conn).put(envelope, message)
    if group.kind is Kind.QUEUE:
        # Woken only when a QueueReceiver serves it (as Queue.push does); its sweep finds it anyway.
        if conn.sismember(receivers_key(names), group.name):
            queues.wake_router(conn, names, group.name, [key], timeout=queues.route_timeout(settings, 1))
        return key
    with conn.pipeline() as pipe:
        if group.kind is Kind.OUTGOING:
            queues.wake_relay(conn, names, [key], pipeline=pipe)
        else:
            queues.wake_router(conn, names, group.name, [key], timeout=queues.route_timeout(settings, 1),
                               pipeline=pipe)
            Lines(conn, names, group.name).add([(key, envelope.mail_from)], pipeline=pipe)  # after rq's MULTI
        pipe.execute()
    return key
