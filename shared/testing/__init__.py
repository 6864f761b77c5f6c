"""Testing helpers for Lamson applications: conversations with the handlers in-process.

No servers and no Redis: the Router keeps state in memory and a
``CapturingRelay`` (assigned to ``settings.relay`` by ``config/testing.py``)
keeps what handlers send, for ``queue()`` and ``delivered()``.
"""

from lamson.testing.conversation import RouterConversation, assert_in_state, make_message
from lamson.testing.relay import CapturingRelay, clear_queue, delivered, queue
from lamson.testing.router import reset_router, router_snapshot

__all__ = [
    "CapturingRelay",
    "RouterConversation",
    "assert_in_state",
    "clear_queue",
    "delivered",
    "make_message",
    "queue",
    "reset_router",
    "router_snapshot",
]
