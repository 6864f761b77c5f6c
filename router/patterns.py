"""Turning a route pattern such as ``(address)@(host)`` into an anchored regex.

A pattern is a regular expression in which ``(name)`` stands for a named
capture whose regex comes from the route's keyword arguments or, failing that,
from ``Router.defaults``. Compilation is deliberately separate from the
decorator: a route is compiled when the router builds its table, after the
application's defaults are known, so the order in which modules are imported
does not matter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: ``(name)`` not preceded by a backslash: a capture placeholder.
PLACEHOLDER = re.compile(r"(?<!\\)\((\w+)\)")


class RoutingError(ValueError):
    """A route cannot be compiled (unknown capture, bad regex)."""


def placeholders(pattern: str) -> list[str]:
    """The capture names a pattern uses, in order."""
    return PLACEHOLDER.findall(pattern)


def expand(pattern: str, captures: Mapping[str, str], defaults: Mapping[str, str]) -> str:
    """The full regex text: placeholders replaced by named groups, anchored ``^…$``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in captures:
            regex = captures[name]
        elif name in defaults:
            regex = defaults[name]
        else:
            raise RoutingError(
                f"route {pattern!r}: no regex for capture ({name}); pass {name}=REGEX to @route "
                f"or set it with Router.defaults() (write (?:{name}) for a plain group)"
            )
        return f"(?P<{name}>{regex})"

    text = PLACEHOLDER.sub(replace, pattern)
    if not text.startswith("^"):
        text = "^" + text
    if not text.endswith("$") or text.endswith("\\$"):
        text = text + "$"
    return text


def compile_route(pattern: str, captures: Mapping[str, str], defaults: Mapping[str, str]) -> re.Pattern[str]:
    """Compile a route case-insensitively (addresses are matched lowercased anyway)."""
    text = expand(pattern, captures, defaults)
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise RoutingError(f"route {pattern!r} gives an invalid regex {text!r}: {exc}") from exc
