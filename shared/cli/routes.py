"""``lamson routes [-test ADDRESS]``: the routing table of the booted application.

The application is booted exactly as a router worker boots it (settings,
then ``config.boot``), without Redis: the Router keeps its in-memory state,
which is all a report needs.
"""

from __future__ import annotations

import argparse
import sys

from lamson.cli.framework import Command, Parser, app_options, option


def configure(parser: Parser) -> None:
    option(parser, "test", metavar="ADDRESS", default=None, help="show what this address would match")
    option(parser, "boot", metavar="MODULE", default=None, help="boot module (default: config.boot)")
    app_options(parser)


def run(args: argparse.Namespace) -> int:
    import importlib

    from lamson import settings as lsettings
    from lamson.router import report

    if args.boot:
        lsettings.load(args.config, args.root)
        importlib.import_module(args.boot)
    else:
        lsettings.boot(args.config, args.root)
    return int(report.routes(sys.stdout, args.test))


COMMANDS = {
    "routes": Command(
        name="routes",
        summary="print the routing ORDER and TABLE; -test ADDRESS shows what an address matches",
        examples=("lamson routes", "lamson routes -test hello@test.com"),
        configure=configure,
        run=run,
        description="Boot the application (config/settings.py, then config/boot.py) and print every route's\n"
                    "full regular expression with the state functions it maps to. With -test ADDRESS,\n"
                    "also what that address matches and when each function runs (exit 1 if nothing).",
    ),
}
