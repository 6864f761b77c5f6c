"""Why a message sent to a list address must not be passed on to the members.

A list that passes on automatic mail loops: a member's vacation reply to a
post would go to every member, whose own vacation replies would follow.
Lamson already refuses to *answer* such mail (``lamson.bounce.auto_reply_refusal``,
RFC 3834: bounces, ``<>``, ``Auto-Submitted``, ``Precedence: bulk/junk/list``,
``List-*`` headers, autoresponder headers, ``MAILER-DAEMON``) and the router
parks mail carrying the relay's ``X-Lamson-Loop`` trace too often
(``max_loop_traces``). A list must not *forward* any of that either, and adds
the two checks that name this very list: its own ``List-Id`` or its own
``X-Loop`` coming back (a member's server redirecting our copy to the list
address, a list subscribed to itself) — checked first, so the log says
"loop" rather than "list mail".
"""

from __future__ import annotations

from typing import Any

from app.model.headers import list_id
from lamson.bounce import auto_reply_refusal


def _values(message: Any, name: str) -> list[str]:
    return [str(v) for v in (message.get_all(name) or [])]


def own_loop(message: Any, name: str, host: str) -> str | None:
    """The reason ``message`` is this list's own mail coming back, or None."""
    ident = f"<{list_id(name, host)}>".lower()
    for value in _values(message, "List-Id"):
        if ident in value.lower():
            return f"loop: the message carries this list's own List-Id {ident}"
    address = f"{name}@{host}".lower()
    for value in _values(message, "X-Loop"):
        if value.strip().lower() == address:
            return f"loop: the message carries X-Loop: {address}"
    return None


def refusal(message: Any, name: str, host: str) -> str | None:
    """Why ``message`` must not go to list ``name``'s members (and gets no answer either), or None."""
    return own_loop(message, name, host) or auto_reply_refusal(message)
