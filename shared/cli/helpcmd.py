"""``lamson help [-for COMMAND]``: the list of commands, or one command explained."""

from __future__ import annotations

import argparse

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


COMMANDS = {
    "help": Command(
        name="help",
        summary="list the commands, or explain one with -for COMMAND",
        examples=("lamson help", "lamson help -for send"),
        configure=configure,
        run=run,
    ),
}
