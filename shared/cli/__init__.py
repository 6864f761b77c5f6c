"""The ``lamson`` command line: ``lamson COMMAND [options]``.

Each command lives in a small module of this package and is described by a
:class:`lamson.cli.framework.Command`; this module only maps names to those
modules, so that ``lamson help`` and a mistyped name never import the servers.
"""

from __future__ import annotations

import importlib
import sys

from lamson.cli.framework import EXIT_USAGE, Command, guarded

#: Command name -> module (in lamson.cli) that defines it, in the order ``lamson help`` lists them.
COMMAND_MODULES: dict[str, str] = {
    "gen": "gen",
    "start": "control",
    "stop": "control",
    "restart": "control",
    "status": "control",
    "wait": "waitcmd",
    "log": "logcmd",
    "send": "mailing",
    "sendmail": "mailing",
    "queue": "queuecmd",
    "spam": "spamcmd",
    "routes": "routes",
    "check": "check",
    "metrics": "metricscmd",
    "web": "webcmd",
    "passwd": "passwdcmd",
    "dkim": "dkimcmd",
    "blast": "blast",
    "cleanse": "cleanse",
    "receiver": "processes",
    "worker": "processes",
    "relay": "processes",
    "redis": "processes",
    "redis-url": "processes",
    "help": "helpcmd",
    "version": "helpcmd",
}


def command(name: str) -> Command | None:
    """The Command called ``name``, or None."""
    module_name = COMMAND_MODULES.get(name)
    if module_name is None:
        return None
    commands: dict[str, Command] = importlib.import_module(f"lamson.cli.{module_name}").COMMANDS
    return commands[name]


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``lamson COMMAND ...`` and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "-help", "--help"):
        argv = ["help"]
    name, rest = argv[0], argv[1:]
    found = command(name)
    if found is None:
        print(f"lamson: unknown command {name!r} (see: lamson help)", file=sys.stderr)
        return EXIT_USAGE
    return guarded(found, rest)
