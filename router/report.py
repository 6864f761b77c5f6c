"""``lamson routes``: the routing ORDER and TABLE, and what an address would hit.

The guide's debugging aid: with routes spread over handler modules, this is
the one place that shows them all, with the full regexes to paste into a
Python shell.
"""

from __future__ import annotations

from typing import TextIO

from lamson.router.decorators import spec_of
from lamson.router.routing import Router, RouterClass, bare_address, function_name


def _flags(func: object) -> str:
    spec = spec_of(func)
    tags = []
    if spec is not None and spec.stateless:
        tags.append("stateless")
    if spec is not None and spec.nolocking:
        tags.append("nolocking")
    return f" ({', '.join(tags)})" if tags else ""


def routes(out: TextIO, test: str | None = None, router: RouterClass | None = None) -> int:
    """Print the routing table; with ``test``, what that address matches. Exit code: 1 if nothing."""
    router = router or Router
    order = router.ORDER
    print(f"Routing ORDER: {order!r}", file=out)
    print("Routing TABLE:", file=out)
    for regex, funcs in router.TABLE.items():
        names = "  ".join(function_name(f) + _flags(f) for f in funcs)
        print(f"{regex!r}:  {names}", file=out)
    if test is None:
        return 0

    address = bare_address(test)
    matches = list(router.match(address))
    print("", file=out)
    if not matches:
        print(f"TEST address {test!r} matches no route.", file=out)
        return 1
    print(f"TEST address {test!r} matches:", file=out)
    for pattern, funcs in router.table:
        found = pattern.match(address)
        if not found:
            continue
        captures = {k: v for k, v in found.groupdict().items() if v is not None}
        print(f"  {pattern.pattern!r} -- {captures!r}", file=out)
        for func in funcs:
            spec = spec_of(func)
            if spec is not None and spec.stateless:
                when = "always (stateless)"
            else:
                when = f"when the sender is in state {func.__name__}"
            lock = ", no lock" if spec is not None and spec.nolocking else ""
            print(f"      {function_name(func)}: runs {when}{lock}", file=out)
    return 0
