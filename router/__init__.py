"""Routing mail to handler state functions: the guide's ``lamson.routing``.

What a handler author uses, on one screen (``__all__``)::

    from lamson.router import route, route_like, stateless, nolocking, state_key_generator
    from lamson.router import Router, defer, ConversationBusy, RoutingError

``Router`` is the process's router: ``config/boot.py`` calls
``Router.defaults(...)`` and ``Router.load(settings.handlers)`` on it, as the
guide shows. The rest is importable from here for code written against
earlier versions, but is not the handler's business: conversation state and
lock backends (``lamson.router.state``, ``lamson.router.locks``), the router's
class (``lamson.router.routing``), what routing came to
(``lamson.router.disposition``) and a worker's wiring
(``lamson.router.wiring``).
"""

from typing import Any

# The handler author's names (``__all__``), then the ones kept importable for earlier code ("X as X").
from lamson.router.decorators import nolocking, route, route_like, state_key_generator, stateless
from lamson.router.deferred import DeferNotConfigured, defer
from lamson.router.locks import ConversationBusy
from lamson.router.locks import LocalLocks as LocalLocks
from lamson.router.locks import RedisLocks as RedisLocks
from lamson.router.patterns import RoutingError
from lamson.router.routing import INFRASTRUCTURE_ERRORS as INFRASTRUCTURE_ERRORS
from lamson.router.routing import Router
from lamson.router.routing import RouterClass as RouterClass
from lamson.router.routing import RoutingBase as RoutingBase
from lamson.router.state import MemoryStorage as MemoryStorage
from lamson.router.state import RedisStorage as RedisStorage
from lamson.router.state import ShelveStorage as ShelveStorage
from lamson.router.state import StateStorage as StateStorage

__all__ = [
    "ConversationBusy",
    "DeferNotConfigured",
    "Router",
    "RoutingError",
    "defer",
    "nolocking",
    "route",
    "route_like",
    "state_key_generator",
    "stateless",
]

def __getattr__(name: str) -> Any:
    """``lamson.router.setup_worker``: a worker's wiring, from :mod:`lamson.router.wiring` (imported on use)."""
    if name == "setup_worker":
        from lamson.router.wiring import setup_worker

        return setup_worker
    raise AttributeError(f"module 'lamson.router' has no attribute {name!r}")
