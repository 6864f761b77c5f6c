"""Sending a parked message back through the pipeline.

The router parks what no handler took, or what a handler crashed on, in
``run/undeliverable`` with ``X-Lamson-Envelope-From``/``-To`` and
``X-Lamson-Reason`` headers; the routing job quarantines refused messages
with ``X-Lamson-Envelope`` (the spool envelope as JSON) and
``X-Lamson-Quarantined``. Once the handler is fixed, :func:`requeue` strips
those headers, puts the message back in the spool with its envelope, and
enqueues its routing job.
"""

from __future__ import annotations

import json
import re
from types import ModuleType

import redis

from lamson import queues
from lamson.envelope import Envelope
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
        record = json.loads(tags["envelope"])
        envelope = Envelope(mail_from=record.get("mail_from", ""), rcpt_tos=tuple(record.get("rcpt_tos", ())),
                            peer=record.get("peer", ""), helo=record.get("helo", ""),
                            queue=record.get("queue", queues.INCOMING))
    elif "envelope-to" in tags:
        sender = tags.get("envelope-from", "")
        envelope = Envelope(mail_from="" if sender in ("None", "<>") else sender, rcpt_tos=(tags["envelope-to"],),
                            peer="requeued")
    else:
        raise NotParked("no X-Lamson-Envelope headers: not a message Lamson parked")
    return envelope, data


def requeue(data: bytes, settings: ModuleType, conn: redis.Redis) -> str:
    """Spool the parked message again and enqueue its routing job; returns the new spool key."""
    envelope, message = untag(data)
    key = open_spool(settings, conn).put(envelope, message)
    queues.enqueue_route(conn, key, queue=envelope.queue, timeout=settings.job_timeout,
                         retries=settings.route_retries)
    return key
