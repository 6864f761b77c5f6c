"""The ``lamson`` command line (provisional: process entry points only)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``lamson COMMAND ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: lamson COMMAND [options]", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    from lamson.cli import processes

    handler = processes.COMMANDS.get(command)
    if handler is None:
        print(f"lamson: unknown command {command!r}", file=sys.stderr)
        return 2
    return handler(rest)
