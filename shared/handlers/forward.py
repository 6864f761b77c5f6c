"""Forward every message to the smart host (the guide's ``lamson.handlers.forward``).

Stateless and lock-free: each message the router gives it is handed to
``settings.relay`` unchanged (its bytes as received), for the one envelope
recipient it was routed for. That is the point of the explicit ``To=``: a
relay left to read the headers would also send to every Cc and Bcc address
in them, third parties the sender chose, not this application.

Lamson 1.x used it in a second boot that reads ``run/undeliverable`` and
forwards what no handler took to a real mail server. It forwards to any
address it is routed, so it is safe only behind a receiver that accepts
just the domains you serve (``served_domains``, see docs/security.md).
"""

from __future__ import annotations

import logging
from typing import Any

from lamson import context
from lamson.router import nolocking, route, stateless

log = logging.getLogger("lamson.handlers.forward")


app_settings = context.app_settings


@route("(to)@(host)", to=".+", host=".+")
@stateless
@nolocking
def START(message: Any, to: str | None = None, host: str | None = None) -> None:  # noqa: N802 - guide style
    rcpt = message.To
    if not rcpt:
        log.warning("not forwarding message from <%s>: no envelope recipient", message.From)
        return
    relay = getattr(app_settings(), "relay", None)
    if relay is None:
        raise RuntimeError("lamson.handlers.forward needs settings.relay (set it in config/boot.py)")
    # The envelope sender stays the original one ("" keeps the null sender of a bounce: no loops).
    relay.deliver(message, To=rcpt, From=message.From)
    log.info("forwarded message from <%s> to <%s>", message.From, rcpt)
