"""The option framework every ``lamson`` command is built on.

The guide spells options with one dash (``-port 8823``, ``-ALL run``,
``-FORCE``), modern users type two (``--port``); both must work, and bad use
must end in one line on stderr and exit code 2, never a traceback. argparse
does the parsing; this module only fixes its three habits that get in the
way: it exits by itself on errors, it prints multi-line usage, and it treats
``-h`` as the only help spelling.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

#: Exit codes shared by every command.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

HELP_FLAGS = ("-h", "-help", "--help")


class UsageError(Exception):
    """Bad use of a command: one line on stderr, exit code 2."""


class CommandError(Exception):
    """The command was used correctly but could not do its job: one line, exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see: lamson help -for {self.prog.split()[-1]})")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageError(f"{self.prog}: {(message or 'bad usage').strip()}")
        raise SystemExit(status)


def option(parser: argparse.ArgumentParser, name: str, *aliases: str, **kwargs: Any) -> None:
    """Add an option as ``-name`` (the guide) and ``--name`` (everyone else)."""
    spellings = [f"-{name}", f"--{name}"]
    for alias in aliases:
        spellings += [f"-{alias}", f"--{alias}"]
    kwargs.setdefault("dest", name.replace("-", "_"))
    parser.add_argument(*spellings, **kwargs)


def port_number(text: str) -> int:
    """argparse type for a TCP port: an integer from 1 to 65535."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port {text!r} (a number from 1 to 65535)") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"bad port {text!r} (a number from 1 to 65535)")
    return value


def app_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that loads the application takes."""
    option(parser, "config", default=None, metavar="MODULE",
           help="settings module (default: $LAMSON_SETTINGS or config.settings)")
    option(parser, "root", default=None, metavar="DIR",
           help="project root, put on sys.path (default: $LAMSON_ROOT or the current directory)")


@dataclass(frozen=True)
class Command:
    """One ``lamson NAME`` command: how to parse it, how to run it, how to explain it."""

    name: str
    summary: str
    examples: tuple[str, ...]
    configure: Callable[[Parser], None]
    run: Callable[[argparse.Namespace], int]
    description: str = ""
    #: Rewrites raw argv before argparse sees it (sendmail's foreign flags).
    prepare: Callable[[list[str]], list[str]] | None = None
    extra_help: str = field(default="")

    def parser(self) -> Parser:
        parser = Parser(
            prog=f"lamson {self.name}",
            description=self.description or self.summary,
            epilog=self.epilog(),
            add_help=False,
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.configure(parser)
        return parser

    def epilog(self) -> str:
        lines = ["example:" if len(self.examples) == 1 else "examples:"]
        lines += [f"  {example}" for example in self.examples]
        if self.extra_help:
            lines += ["", self.extra_help]
        return "\n".join(lines)

    def help_text(self) -> str:
        return self.parser().format_help()

    def invoke(self, argv: list[str]) -> int:
        """Parse ``argv`` (help flags print help and succeed) and run the command."""
        flags = HELP_FLAGS if self.prepare is None else HELP_FLAGS[1:]
        if any(arg in flags for arg in argv):
            sys.stdout.write(self.help_text())
            return EXIT_OK
        if self.prepare is not None:
            argv = self.prepare(argv)
        args = self.parser().parse_args(argv)
        with application_environment(args):
            return self.run(args)


@contextmanager
def application_environment(args: argparse.Namespace) -> Iterator[None]:
    """While a command runs, ``-config``/``-root`` are also LAMSON_SETTINGS/LAMSON_ROOT.

    Everything the command starts or imports then agrees on the application:
    the boot module's ``lamson.settings.load()`` (which reads the variables),
    and the supervisord and programs that ``lamson start -config ...`` runs.
    The previous values come back afterwards (commands also run in-process,
    e.g. from tests).
    """
    wanted = {}
    if getattr(args, "config", None):
        wanted["LAMSON_SETTINGS"] = args.config
    if getattr(args, "root", None):
        wanted["LAMSON_ROOT"] = os.path.abspath(args.root)
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def guarded(command: Command, argv: list[str]) -> int:
    """Run a command; user errors become one line on stderr and an exit code."""
    from lamson.settings import SettingsError

    prog = f"lamson {command.name}"
    try:
        return command.invoke(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.code
    except SettingsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_FAILURE
