"""Lamson 1.x's ``lamson.routing``: the guide's name for :mod:`lamson.router`.

Handlers and boot files written for the guide import from here::

    from lamson.routing import Router, route, route_like, stateless

There is one implementation: every name is the object of the same name in
:mod:`lamson.router`, so ``lamson.routing.Router is lamson.router.Router``
and a handler may use either import path. The few helpers below exist only
because 1.x code calls them by these names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lamson.router.decorators import (
    RouteSpec,
    nolocking,
    route,
    route_like,
    spec_of,
    state_key_generator,
    stateless,
)
from lamson.router.locks import ConversationBusy, LocalLocks, RedisLocks
from lamson.router.patterns import RoutingError
from lamson.router.routing import ERROR, Router, RouterClass, RoutingBase, _default_state_key
from lamson.router.state import START, MemoryStorage, RedisStorage, ShelveStorage, StateStorage

#: The state every conversation starts in (and returns to when forgotten).
ROUTE_FIRST_STATE = START

#: The state key of a module without a ``@state_key_generator``: ``f(module_name, message)``.
DEFAULT_STATE_KEY = _default_state_key

#: The state a module enters when one of its state functions fails, if it routes one.
ROUTE_ERROR_STATE = ERROR

__all__ = [
    "DEFAULT_STATE_KEY",
    "ROUTE_ERROR_STATE",
    "ROUTE_FIRST_STATE",
    "ConversationBusy",
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
    "has_lamson_settings",
    "lamson_setting",
    "nolocking",
    "route",
    "route_like",
    "state_key_generator",
    "stateless",
]

#: How the settings 1.x stored on a function map onto :class:`RouteSpec`.
_SETTING_NAMES: dict[str, Callable[[RouteSpec], Any]] = {
    "format": lambda spec: spec.pattern,
    "captures": lambda spec: dict(spec.captures),
    "stateless": lambda spec: spec.stateless,
    "nolocking": lambda spec: spec.nolocking,
}


def has_lamson_settings(func: Callable[..., Any]) -> bool:
    """True when a decorator of this module has marked ``func`` (1.x's name)."""
    return spec_of(func) is not None


def lamson_setting(func: Callable[..., Any], key: str) -> Any:
    """What the decorators recorded on ``func`` under 1.x's key names.

    ``"format"`` (the recorded, topmost route), ``"captures"``,
    ``"stateless"``, ``"nolocking"``; None for an undecorated function, as
    the guide's ``deliver`` loop expects when it tests ``lamson_setting(func,
    'stateless')``.
    """
    if key not in _SETTING_NAMES:
        raise KeyError(f"unknown route setting {key!r}; known: {', '.join(_SETTING_NAMES)}")
    spec = spec_of(func)
    return None if spec is None else _SETTING_NAMES[key](spec)
