"""Routing mail to handler state functions: the guide's ``lamson.routing``.

Handler modules write::

    from lamson.router import route, route_like, stateless

and the application's boot configures the process-wide ``Router``.
"""

from lamson.router.decorators import nolocking, route, route_like, state_key_generator, stateless
from lamson.router.deferred import DeferNotConfigured, defer
from lamson.router.locks import ConversationBusy, LocalLocks, RedisLocks
from lamson.router.patterns import RoutingError
from lamson.router.routing import INFRASTRUCTURE_ERRORS, Router, RouterClass, RoutingBase
from lamson.router.state import MemoryStorage, RedisStorage, ShelveStorage, StateStorage
from lamson.router.worker_setup import setup_worker

__all__ = [
    "INFRASTRUCTURE_ERRORS",
    "ConversationBusy",
    "DeferNotConfigured",
    "LocalLocks",
    "MemoryStorage",
    "RedisLocks",
    "RedisStorage",
    "Router",
    "RouterClass",
    "RoutingBase",
    "RoutingError",
    "ShelveStorage",
    "StateStorage",
    "defer",
    "nolocking",
    "route",
    "route_like",
    "setup_worker",
    "state_key_generator",
    "stateless",
]
