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
from dataclasses import asdict, dataclass, field

SCHEMA = 1


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
    #: The rq queue whose workers route this message (deferred queues differ).
    queue: str = "lamson-incoming"
    #: Receiver + protocol details a handler might want (e.g. "ESMTP", "SMTPUTF8").
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """One line of JSON (no newline inside), schema number first."""
        record = {"v": SCHEMA, **asdict(self)}
        record["rcpt_tos"] = list(self.rcpt_tos)
        return json.dumps(record, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        record = json.loads(raw)
        version = record.pop("v", None)
        if version != SCHEMA:
            raise UnknownSchema(f"spool record schema {version!r}; this Lamson reads schema {SCHEMA}")
        record["rcpt_tos"] = tuple(record["rcpt_tos"])
        return cls(**record)
