"""The decorators a handler module uses, as in the guide.

They only annotate the function (an attribute holding a :class:`RouteSpec`)
and return it unchanged, so a state function can still be called directly
(``return RUNNING(message, **kw)``) and importing a handler module changes no
global state: ``Router.load`` finds the annotated functions and compiles them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

SPEC_ATTR = "_lamson_route"
KEYGEN_ATTR = "_lamson_state_key_generator"


@dataclass
class RouteSpec:
    """What the decorators said about one state function.

    ``routes`` holds every ``@route`` stacked on the function, in the order
    they were applied (the bottom decorator first), because that is the order
    Lamson 1.x registers them in. ``pattern``/``captures`` are the *recorded*
    route, the topmost one: what ``@route_like`` copies and what a reader of
    the source sees first.
    """

    pattern: str | None = None
    captures: dict[str, str] = field(default_factory=dict)
    stateless: bool = False
    nolocking: bool = False
    routes: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def spec_of(func: Any) -> RouteSpec | None:
    """The RouteSpec of a decorated function, or None."""
    return getattr(func, SPEC_ATTR, None)


def _spec(func: Callable[..., Any]) -> RouteSpec:
    spec = spec_of(func)
    if spec is None:
        spec = RouteSpec()
        setattr(func, SPEC_ATTR, spec)
    return spec


def route(pattern: str, **captures: str) -> Callable[[F], F]:
    """Route addresses matching ``pattern`` to this state function.

    Each ``(name)`` becomes a named group whose regex is ``captures[name]`` or
    the router default; the values matched are passed as keyword arguments.
    Several ``@route`` lines on one function all count (the guide's one-shot
    blog routes ``(post_name)@(host)`` and ``(post_name)-(action)@(host)`` to
    the same state), so each decorator adds a route instead of replacing one.
    """
    if not isinstance(pattern, str) or not pattern:
        raise TypeError("@route needs a non-empty pattern string")

    def decorate(func: F) -> F:
        spec = _spec(func)
        route_entry = (pattern, dict(captures))
        if route_entry not in spec.routes:
            spec.routes.append(route_entry)
        # Decorators apply bottom-up, so the last one applied is the topmost line.
        spec.pattern = pattern
        spec.captures = dict(captures)
        return func

    return decorate


def route_like(other: Callable[..., Any]) -> Callable[[F], F]:
    """Use the same pattern and captures as another routed state function.

    Only the other function's recorded (topmost) route is copied, as in
    Lamson 1.x: stacked routes are a property of that function, not a family.
    """
    other_spec = spec_of(other)
    if other_spec is None or other_spec.pattern is None:
        raise TypeError(f"@route_like({getattr(other, '__name__', other)!r}): that function has no @route")

    def decorate(func: F) -> F:
        pattern = other_spec.pattern
        assert pattern is not None  # checked above; a recorded route keeps its pattern
        return route(pattern, **other_spec.captures)(func)

    return decorate


def stateless(func: F) -> F:
    """Run for every matching message whatever the sender's state; never change the state."""
    _spec(func).stateless = True
    return func


def nolocking(func: F) -> F:
    """Do not take the conversation lock for this function (you do your own locking)."""
    _spec(func).nolocking = True
    return func


def state_key_generator(func: F) -> F:
    """Mark ``func(module_name, message) -> str`` as its module's state key.

    By default a conversation is (handler module, sender); a mailing list
    handler can key by module and list address instead, for example.
    """
    setattr(func, KEYGEN_ATTR, True)
    return func


def is_state_key_generator(func: Any) -> bool:
    """True for a function marked with :func:`state_key_generator`."""
    return bool(getattr(func, KEYGEN_ATTR, False))
