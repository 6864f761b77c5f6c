"""``lamson routes [-test ADDRESS] [MODULE ...]``: the routing table of the booted application.

The application is booted exactly as a router worker boots it (settings,
then ``config.boot``), without Redis: the Router keeps its in-memory state,
which is all a report needs. Lamson 1.x took the modules to import as
arguments (``lamson routes -- config.testing``, or handler modules themselves:
``lamson routes lamson.handlers.log lamson.handlers.queue``): given, they are
imported, in order, after the settings and instead of the boot module. In 1.x
``@route`` registered a route at import; here the Router registers a module's
routes when it loads it, so a module argument that holds routed state
functions is loaded into the Router (a config module is only imported).
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from lamson.cli.framework import Command, CommandError, Parser, UsageError, app_options, option


def configure(parser: Parser) -> None:
    option(parser, "test", metavar="ADDRESS", default=None, help="show what this address would match")
    option(parser, "boot", metavar="MODULE", default=None, help="boot module (default: config.boot)")
    option(parser, "path", metavar="DIR", default=None, help="project root (Lamson 1.x's name for -root)")
    app_options(parser)
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help="modules to import instead of the boot module (e.g. config.testing)")


def routes_in(module: ModuleType) -> bool:
    """True if ``module`` defines a state function with a route (a handler module, not a config one)."""
    from lamson.router.decorators import spec_of

    return any(callable(value) and getattr(value, "__module__", None) == module.__name__
               and getattr(spec_of(value), "pattern", None) is not None for value in vars(module).values())


def run(args: argparse.Namespace) -> int:
    import importlib

    from lamson import settings as lsettings
    from lamson.router import Router, report

    if args.path and args.root and args.path != args.root:
        raise UsageError("lamson routes: -path and -root name the project twice; give one")
    root = args.root or args.path
    if args.boot and args.modules:
        raise UsageError("lamson routes: give -boot MODULE or module names, not both")
    if args.modules:
        lsettings.load(args.config, root)
        for name in args.modules:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name and name.startswith(exc.name):
                    raise CommandError(f"cannot import {name!r} from {lsettings.project_root(root)}") from None
                raise
            if routes_in(module):
                Router.load([name])
    elif args.boot:
        lsettings.run_boot(lsettings.load(args.config, root), args.boot)
    else:
        lsettings.boot(args.config, root)
    return int(report.routes(sys.stdout, args.test))


COMMANDS = {
    "routes": Command(
        name="routes",
        summary="print the routing ORDER and TABLE; -test ADDRESS shows what an address matches",
        examples=("lamson routes", "lamson routes -test hello@test.com", "lamson routes -- config.testing"),
        configure=configure,
        run=run,
        description="Boot the application (config/settings.py, then config/boot.py) and print every route's\n"
                    "full regular expression with the state functions it maps to. With -test ADDRESS,\n"
                    "also what that address matches and when each function runs (exit 1 if nothing).\n"
                    "Module names given as arguments (Lamson 1.x: after --) are imported instead of the\n"
                    "boot module, e.g. config.testing to see the routes your tests run with.",
    ),
}
