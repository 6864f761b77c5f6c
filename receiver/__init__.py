"""The SMTP receiver: accept, spool durably, enqueue the routing job. Nothing else.

It runs no application code and parses no more than the envelope needs, so
a bug in a handler can never make it refuse or lose mail.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SMTPReceiver:
    """Where the receiver process listens, as the guide's ``config/boot.py`` names it.

    In this Lamson the receiver is its own process (``lamson receiver``, run
    by supervisord); boot code that assigns ``settings.receiver =
    SMTPReceiver(host, port)`` keeps working and documents the address.
    """

    host: str = "127.0.0.1"
    port: int = 8823
