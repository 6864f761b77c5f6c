"""Sending a parked message back through the pipeline.

Parked mail carries its envelope: the spool parks with ``X-Lamson-Envelope``
(the envelope as JSON) and ``X-Lamson-Reason``; the Router parks what no
handler took, or what a handler crashed on, with ``X-Lamson-Envelope-From``
/ ``-To`` and ``X-Lamson-Reason`` (older versions also wrote
``X-Lamson-Quarantined``). Once the cause is fixed, :func:`requeue` strips
those headers and puts the message back where it was: incoming mail (and a
deferred queue's) in its spool, in its sender's line, with its routing
wake-up; a reply in the outbox, with the relay's wake-up. Its attempt count
starts again.
"""

from __future__ import annotations

import re
from dataclasses import replace
from types import ModuleType

import redis

from lamson import queues
from lamson.envelope import Envelope
from lamson.names import names_for
from lamson.order import Lines
from lamson.spool import open_spool

_TAG = re.compile(rb"^X-Lamson-(Envelope-From|Envelope-To|Reason|Envelope|Quarantined): ?(.*?)\r?\n", re.I)


class NotParked(ValueError):
    """The message carries no envelope tags: Lamson did not park it."""


def untag(data: bytes) -> tuple[Envelope, bytes]:
    """The envelope recorded when the message was parked, and the message without the tags."""
    tags: dict[str, str] = {}
    while match := _TAG.match(data):
        tags[match.group(1).decode().lower()] = match.group(2).decode("utf-8", "replace")
        data = data[match.end():]
    if "envelope" in tags:
        envelope = replace(Envelope.from_json(tags["envelope"]), attempts=0)
    elif "envelope-to" in tags:
        sender = tags.get("envelope-from", "")
        envelope = Envelope(mail_from="" if sender in ("None", "<>") else sender, rcpt_tos=(tags["envelope-to"],),
                            peer="requeued")
    else:
        raise NotParked("no X-Lamson-Envelope headers: not a message Lamson parked")
    return envelope, data


def requeue(data: bytes, settings: ModuleType, conn: redis.Redis) -> str:
    """Put the parked message back in its spool (or the outbox) and wake its workers; returns the new key."""
    envelope, message = untag(data)
    names = names_for(settings)
    group = envelope.queue or "incoming"
    key = open_spool(settings, conn, group).put(envelope, message)
    with conn.pipeline() as pipe:
        if group == "outgoing":
            queues.wake_relay(conn, names, [key], pipeline=pipe)
        else:
            queues.wake_router(conn, names, group, [key], timeout=queues.route_timeout(settings, 1), pipeline=pipe)
            Lines(conn, names, group).add([(key, envelope.mail_from)], pipeline=pipe)  # after rq's MULTI
        pipe.execute()
    return key
