"""Log every message routed, whatever its address (the guide's ``lamson.handlers.log``).

Stateless and lock-free, so it never changes a conversation or waits for
one: add it to ``settings.handlers`` to see each message in the worker's log.
"""

from __future__ import annotations

import logging

from lamson.mail import MailRequest
from lamson.router import nolocking, route, stateless

log = logging.getLogger("lamson.handlers.log")


@route("(to)", to=".+")
@stateless
@nolocking
def START(message: MailRequest, to: str | None = None) -> None:  # noqa: N802 - the guide names states in capitals
    log.info("message to=<%s> from=<%s> peer=%s subject=%r size=%d", message.To, message.From, message.Peer,
             message["subject"], len(message.Data))
