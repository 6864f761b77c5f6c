"""``lamson help [-for COMMAND]`` and ``lamson version``: what this Lamson is and can do."""

from __future__ import annotations

import argparse
from pathlib import Path

from lamson.cli.framework import Command, CommandError, Parser, option


def configure(parser: Parser) -> None:
    option(parser, "for", metavar="COMMAND", default=None, help="explain one command")
    parser.add_argument("command", nargs="?", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from lamson import cli

    wanted = getattr(args, "for") or args.command
    if wanted:
        found = cli.command(wanted)
        if found is None:
            raise CommandError(f"unknown command {wanted!r} (see: lamson help)", code=2)
        print(found.help_text(), end="")
        return 0
    print("usage: lamson COMMAND [options]     (options take -name or --name)\n")
    print("commands:")
    for name in cli.COMMAND_MODULES:
        found = cli.command(name)
        assert found is not None
        print(f"  {name:<10} {found.summary}")
    print("\nlamson help -for COMMAND (or lamson COMMAND --help) explains one command.")
    return 0


def configure_version(parser: Parser) -> None:
    """No options: the guide's ``lamson version`` takes none."""


def version(args: argparse.Namespace) -> int:
    """The version of this Lamson (one source: ``lamson.__version__``) and of the Python running it."""
    import platform

    import lamson

    print(f"Lamson {lamson.__version__} (Python {platform.python_version()}, {Path(lamson.__file__).parent})")
    return 0


COMMANDS = {
    "help": Command(
        name="help",
        summary="list the commands, or explain one with -for COMMAND",
        examples=("lamson help", "lamson help -for send"),
        configure=configure,
        run=run,
    ),
    "version": Command(
        name="version",
        summary="print the version of Lamson (and of the Python it runs on)",
        examples=("lamson version",),
        configure=configure_version,
        run=version,
    ),
}
