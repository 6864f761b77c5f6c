"""The SMTP envelope, kept with every spooled message.

What the receiver learned in the SMTP transaction (MAIL FROM, every RCPT TO,
the peer, HELO name, time, its own id) is not in the message headers, so it
is stored beside the message and versioned: a worker refuses a spool record
whose schema it does not know instead of guessing.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

SCHEMA = 2
#: Older schemas this Lamson still reads (1: no ``attempts``; queues named "lamson-incoming").
READABLE = {1, 2}


#: One encoder for every record (json.dumps with separators makes a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


#: The ``extra`` key of an outbox record naming the incoming message it answers (that message's
#: ``id``): set for mail a handler sends, kept by retries, splits and delivery status notifications,
#: and named in the relay's log lines, so one id follows a message from the receiver to the smart host.
ORIGIN = "origin"


class UnknownSchema(ValueError):
    """A spool record written by a newer (or foreign) Lamson."""


def new_id() -> str:
    """A short receiver-assigned message id, unique enough to grep logs by."""
    return secrets.token_hex(8).upper()


@dataclass(frozen=True)
class Envelope:
    """What the receiver knew about one accepted message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer: str = ""
    helo: str = ""
    id: str = field(default_factory=new_id)
    received_at: float = field(default_factory=time.time)
    #: The worker group that handles this message: "incoming", "outgoing", or a deferred
    #: queue's name (its rq queue is the namespace's: ``lamson-incoming``, ...).
    queue: str = "incoming"
    #: Receiver + protocol details a handler might want (e.g. "ESMTP", "SMTPUTF8"); for
    #: replies, the smart host and the delivery bookkeeping.
    extra: dict[str, str] = field(default_factory=dict)
    #: How many times handling it failed or a worker died holding it (parked at the limit).
    attempts: int = 0

    def to_json(self) -> bytes:
        """One line of JSON (no newline inside), schema number first."""
        # Field by field, not dataclasses.asdict: that deep-copies, and this runs for every message
        # at every stage (a test checks the two agree).
        record = {"v": SCHEMA, "mail_from": self.mail_from, "rcpt_tos": list(self.rcpt_tos), "peer": self.peer,
                  "helo": self.helo, "id": self.id, "received_at": self.received_at, "queue": self.queue,
                  "extra": dict(self.extra), "attempts": self.attempts}
        return _ENCODER.encode(record).encode("ascii")

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        record = json.loads(raw)
        version = record.pop("v", None)
        if version not in READABLE:
            raise UnknownSchema(f"spool record schema {version!r}; this Lamson reads schemas {sorted(READABLE)}")
        record["rcpt_tos"] = tuple(record["rcpt_tos"])
        queue = str(record.get("queue", "incoming"))
        if queue.startswith("lamson-"):  # schema 1 stored the rq queue name
            record["queue"] = queue[len("lamson-"):]
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in record.items() if k in known})
