"""``lamson queue``: look at and change a Maildir queue (``run/queue`` by default).

Keys come from users, so every key goes through :func:`lamson.maildir.locate`
(via :class:`lamson.queue.Queue`): a key that is not a Maildir name, or that
would resolve outside the Maildir, is a usage error, never a file read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamson.cli.framework import Command, CommandError, Parser, UsageError, app_options, option
from lamson.settings import DEFAULTS

if TYPE_CHECKING:
    from lamson.queue import Queue


def configure(parser: Parser) -> None:
    option(parser, "name", default=DEFAULTS["queue_dir"], metavar="DIR", help="the Maildir (default: run/queue)")
    action = parser.add_mutually_exclusive_group(required=True)
    actions: tuple[tuple[str, dict[str, Any]], ...] = (
        ("pop", {"action": "store_true", "help": "remove the oldest message and print it"}),
        ("get", {"metavar": "KEY", "help": "print the message stored under KEY"}),
        ("remove", {"metavar": "KEY", "help": "delete the message stored under KEY"}),
        ("count", {"action": "store_true", "help": "print how many messages there are"}),
        ("clear", {"action": "store_true", "help": "delete every message"}),
        ("keys", {"action": "store_true", "help": "print every key, oldest first (with -reasons: why it was parked)"}),
        ("requeue", {"metavar": "KEY", "nargs": "*",
                     "help": "send parked messages (run/undeliverable, run/bounced) back where they were: "
                             "the keys given, or every one with -all"}),
    )
    for name, kwargs in actions:
        action.add_argument(f"-{name}", f"--{name}", dest=name, **kwargs)
    option(parser, "all", action="store_true", dest="all", help="with -requeue: every message in the Maildir")
    option(parser, "reasons", action="store_true", help="with -keys: each key's X-Lamson-Reason")
    app_options(parser)


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
                print(f"{key}  {reason_of(queue.get_bytes(key) or b'')}" if args.reasons else key)
        elif args.requeue is not None:
            keys = queue.keys() if args.all else list(args.requeue)
            if not keys:
                raise UsageError("lamson queue: -requeue needs KEY... or -all")
            requeue_many(queue, keys, args)
    except BadKey as exc:
        raise UsageError(f"lamson queue: {exc}") from None
    out.flush()
    return 0


def reason_of(data: bytes) -> str:
    """Why a parked message was parked (lamson.parked.read; any form Lamson ever wrote), or "-"."""
    from lamson.parked import NotParked, read

    try:
        return read(data).reason or "-"
    except NotParked:
        return "-"


def app_settings(args: argparse.Namespace) -> Any:
    """The application's settings: -config/-root, else the environment, else what deploy/supervisord.conf
    in this directory points at (LAMSON_ROOT=...), so requeueing works from where the deploy files are."""
    from lamson import settings as lsettings
    from lamson.cli.project import root_from_deploy

    try:
        return lsettings.load(args.config, args.root)
    except lsettings.SettingsError:
        if args.root is not None:
            raise
        found = root_from_deploy(Path.cwd())
        if found is None:
            raise
        return lsettings.load(args.config, str(found))


def requeue_many(queue: Queue, keys: list[str], args: argparse.Namespace) -> None:
    """Put parked messages back where they were, say what happened to each, remove them from the queue."""
    import redis

    from lamson.connection import connect, redact
    from lamson.parked import NotParked, read
    from lamson.requeue import destination, requeue

    conf = app_settings(args)
    conn = connect(conf.redis_url, timeout=2.0)
    failed = 0

    def refuse(text: str) -> None:
        nonlocal failed
        if len(keys) == 1:
            raise CommandError(text, code=1)
        print(f"lamson queue: {text}", file=sys.stderr)
        failed += 1

    for key in keys:
        data = queue.get_bytes(key)
        if data is None:
            refuse(f"no message {key!r} in {args.name}")
            continue
        try:
            found = read(data)
            envelope = found.sent_back()
            where = destination(envelope)
            new_key = requeue(data, conf, conn)
        except NotParked as exc:
            refuse(f"{key}: {exc}")
            continue
        except redis.RedisError as exc:
            raise CommandError(f"cannot reach Redis at {redact(conf.redis_url)}: {exc}", code=1) from None
        queue.remove(key)
        print(f"requeued {key} as {new_key} in {where}: from <{envelope.mail_from}> to "
              f"{', '.join(f'<{r}>' for r in envelope.rcpt_tos)} (was: {found.reason or '-'})")
    if failed:
        raise CommandError(f"{failed} of {len(keys)} message(s) not requeued", code=1)


def bytes_of(message: object) -> bytes:
    """The raw bytes of a popped message (a MailRequest or plain bytes)."""
    from lamson.queue import as_bytes

    for attr in ("original", "Data", "data"):
        value = getattr(message, attr, None)
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape")
    return as_bytes(message)


COMMANDS = {
    "queue": Command(
        name="queue",
        summary="pop, get, remove, count, clear or list the messages of a Maildir queue",
        examples=("lamson queue -count", "lamson queue -keys", "lamson queue -name run/undeliverable -get KEY",
                  "lamson queue -name run/undeliverable -requeue KEY",
                  "lamson queue -name run/undeliverable -keys -reasons",
                  "lamson queue -name run/undeliverable -requeue -all"),
        configure=configure,
        run=run,
        description="Look at and change a Maildir (default run/queue, which `lamson log` fills).\n"
                    "Exactly one of -pop, -get KEY, -remove KEY, -count, -clear, -keys, -requeue KEY.\n"
                    "-requeue sends a message the router parked (run/undeliverable) back through the\n"
                    "spool and the router workers, with the envelope it had, once the handler is fixed.\n"
                    "Keys that are not Maildir names or lead outside the Maildir are refused (exit 2).",
    ),
}
