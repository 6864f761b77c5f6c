"""What routing one message for one recipient came to: the Router's answer to the routing job.

The Router runs the state functions; what happens to the message afterwards
(routed and done, parked with a reason) is the routing job's to decide, in
one place (docs/design.md, "The routing job"). So routing returns one of
these instead of parking as a side effect.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Routed:
    """State functions ran and none failed."""

    ran: int


@dataclass(frozen=True)
class NoRoute:
    """No state function took it: no route matched the recipient, or none in the sender's current state."""

    reason: str = "no route matched in the current state"


@dataclass(frozen=True)
class Refused:
    """A handler raised SMTPError: a deliberate refusal (there is no SMTP client left to tell); nothing
    more ran for the message."""

    reason: str
    ran: int = 0


@dataclass(frozen=True)
class Crashed:
    """A state function raised (its traceback is logged); the others that matched still ran."""

    reason: str
    ran: int = 0


Disposition = Routed | NoRoute | Refused | Crashed
