"""``lamson queue``: look at and change a Maildir queue (``run/queue`` by default).

Keys come from users, so every key goes through :func:`lamson.maildir.locate`
(via :class:`lamson.queue.Queue`): a key that is not a Maildir name, or that
would resolve outside the Maildir, is a usage error, never a file read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lamson.cli.framework import Command, CommandError, Parser, UsageError, option


def configure(parser: Parser) -> None:
    option(parser, "name", default="run/queue", metavar="DIR", help="the Maildir (default: run/queue)")
    action = parser.add_mutually_exclusive_group(required=True)
    for name, kwargs in (
        ("pop", {"action": "store_true", "help": "remove the oldest message and print it"}),
        ("get", {"metavar": "KEY", "help": "print the message stored under KEY"}),
        ("remove", {"metavar": "KEY", "help": "delete the message stored under KEY"}),
        ("count", {"action": "store_true", "help": "print how many messages there are"}),
        ("clear", {"action": "store_true", "help": "delete every message"}),
        ("keys", {"action": "store_true", "help": "print every key, oldest first"}),
    ):
        action.add_argument(f"-{name}", f"--{name}", dest=name, **kwargs)


def run(args: argparse.Namespace) -> int:
    from lamson.maildir import BadKey
    from lamson.queue import Queue

    path = Path(args.name)
    if not path.is_dir():
        raise CommandError(f"no Maildir at {args.name}", code=1)
    if not (path / "new").is_dir() or not (path / "cur").is_dir():
        raise CommandError(f"{args.name} is not a Maildir (no new/ and cur/)", code=1)
    queue = Queue(path)
    out = sys.stdout.buffer
    try:
        if args.pop:
            key, message = queue.pop()
            if key is None:
                raise CommandError(f"{args.name} is empty", code=1)
            out.write(f"{key}\n".encode())
            out.write(bytes_of(message))
        elif args.get is not None:
            data = queue.get_bytes(args.get)
            if data is None:
                raise CommandError(f"no message {args.get!r} in {args.name}", code=1)
            out.write(data)
        elif args.remove is not None:
            if not queue.remove(args.remove):
                raise CommandError(f"no message {args.remove!r} in {args.name}", code=1)
            print(f"removed {args.remove}")
        elif args.count:
            print(queue.count())
        elif args.clear:
            print(f"removed {queue.clear()} messages from {args.name}")
        elif args.keys:
            for key in queue.keys():
                print(key)
    except BadKey as exc:
        raise UsageError(f"lamson queue: {exc}") from None
    out.flush()
    return 0


def bytes_of(message: object) -> bytes:
    """The raw bytes of a popped message (a MailRequest or plain bytes)."""
    for attr in ("original", "Data", "data"):
        value = getattr(message, attr, None)
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape")
    if hasattr(message, "as_bytes"):
        return message.as_bytes()  # type: ignore[no-any-return,attr-defined]
    return bytes(message)  # type: ignore[call-overload]


COMMANDS = {
    "queue": Command(
        name="queue",
        summary="pop, get, remove, count, clear or list the messages of a Maildir queue",
        examples=("lamson queue -count", "lamson queue -keys", "lamson queue -name run/undeliverable -get KEY"),
        configure=configure,
        run=run,
        description="Look at and change a Maildir (default run/queue, which `lamson log` fills).\n"
                    "Exactly one of -pop, -get KEY, -remove KEY, -count, -clear, -keys.\n"
                    "Keys that are not Maildir names or lead outside the Maildir are refused (exit 2).",
    ),
}
