"""Testing helpers for Lamson applications: the guide's and Lamson 1.x's, on this pipeline.

In-process, no servers and no Redis: the Router keeps state in memory and a
``CapturingRelay`` (assigned to ``settings.relay`` by ``config/testing.py``)
keeps what handlers send; ``RouterConversation`` talks to the handlers.
Against running servers (``lamson start``), as 1.x tests did:
``TestConversation(relay(port=8823), ...)`` sends over SMTP and finds the
replies in ``run/queue``, where the logging server stores them.

Either way ``queue()``, ``clear_queue()`` and ``delivered()`` look at the
test queue, ``run/queue``: its Maildir plus what was captured in-process
(see :mod:`lamson.testing.relay`). ``relay(...)`` and ``spelling(file_name,
contents)`` are also the modules ``lamson.testing.relay`` and
``lamson.testing.spelling``: calling them does what 1.x's functions did.
"""

from lamson.testing import relay, spelling
from lamson.testing.conversation import RouterConversation, TestConversation, assert_in_state, make_message
from lamson.testing.relay import (
    TEST_QUEUE,
    CapturingRelay,
    SMTPRelay,
    clear_queue,
    delivered,
    queue,
)
from lamson.testing.router import reset_router, router_snapshot

__all__ = [
    "TEST_QUEUE",
    "CapturingRelay",
    "RouterConversation",
    "SMTPRelay",
    "TestConversation",
    "assert_in_state",
    "clear_queue",
    "delivered",
    "make_message",
    "queue",
    "relay",
    "reset_router",
    "router_snapshot",
    "spelling",
]
