"""``lamson blast -input MAILDIR_OR_MBOX``: replay stored mail at an SMTP server.

For regression runs (replay yesterday's mail at a test instance) and load
tests. The envelope of each message is taken from what a delivery agent
recorded (Return-Path, X-Original-To: the logging server writes both) and
otherwise from From and To/Cc; ``-sender``/``-to`` override it.
"""

from __future__ import annotations

import argparse
import mailbox
import smtplib
import time
from collections.abc import Iterator
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr
from pathlib import Path

from lamson.cli import smtpclient
from lamson.cli.framework import Command, CommandError, Parser, option
from lamson.cli.mailing import check_address, server_address, server_options


def configure(parser: Parser) -> None:
    option(parser, "input", required=True, metavar="PATH", help="a Maildir (with new/ and cur/) or an mbox file")
    option(parser, "sender", default=None, metavar="ADDRESS", help="envelope sender for every message")
    option(parser, "to", default=None, metavar="ADDRESS", help="envelope recipient for every message")
    option(parser, "limit", type=int, default=None, metavar="N", help="send at most N messages")
    server_options(parser)


def messages(path: Path) -> Iterator[bytes]:
    """The raw messages of a Maildir (new/ then cur/, oldest first) or an mbox file."""
    if path.is_dir():
        if not (path / "new").is_dir() or not (path / "cur").is_dir():
            raise CommandError(f"{path} is a directory but not a Maildir (no new/ and cur/)")
        for sub in ("new", "cur"):
            for entry in sorted(p for p in (path / sub).iterdir() if p.is_file() and not p.name.startswith(".")):
                yield entry.read_bytes()
    elif path.is_file():
        box = mailbox.mbox(path, create=False)
        try:
            for key in box.keys():
                yield box.get_bytes(key)
        finally:
            box.close()
    else:
        raise CommandError(f"no Maildir or mbox at {path}")


def envelope(data: bytes) -> tuple[str, list[str]]:
    """Sender and recipients recorded in (or implied by) the headers."""
    headers = BytesHeaderParser().parsebytes(data)
    sender = parseaddr(str(headers.get("Return-Path", "")))[1] or parseaddr(str(headers.get("From", "")))[1]
    recorded = [str(v) for v in headers.get_all("X-Original-To", [])]
    fields = recorded or [str(v) for name in ("To", "Cc") for v in headers.get_all(name, [])]
    return sender, list(dict.fromkeys(addr for _n, addr in getaddresses(fields) if addr))


def run(args: argparse.Namespace) -> int:
    host, port = server_address(args)
    if args.sender:
        check_address(args.sender)
    if args.to:
        check_address(args.to)
    sent = failed = skipped = 0
    client = None
    started = time.monotonic()
    try:
        for index, data in enumerate(messages(Path(args.input))):
            if args.limit is not None and index >= args.limit:
                break
            sender, rcpts = envelope(data)
            sender = args.sender or sender
            rcpts = [args.to] if args.to else rcpts
            if not rcpts:
                skipped += 1
                continue
            if client is None:
                client = smtpclient.connect(host, port, args.debug)
            try:
                smtpclient.send(client, sender, rcpts, data)
                sent += 1
            except CommandError as exc:
                failed += 1
                print(f"message {index + 1}: {exc}")
                if not connected(client):
                    client = None
    finally:
        if client is not None:
            smtpclient.close(client)
    elapsed = max(time.monotonic() - started, 1e-6)
    print(f"sent {sent}, failed {failed}, skipped {skipped} (no recipient) to {host}:{port} "
          f"in {elapsed:.2f}s: {sent / elapsed:.1f} messages/s")
    return 1 if failed else 0


def connected(client: smtplib.SMTP) -> bool:
    try:
        return client.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


COMMANDS = {
    "blast": Command(
        name="blast",
        summary="replay every message of a Maildir or mbox at an SMTP server; counts and rate",
        examples=("lamson blast -input run/queue -port 8823", "lamson blast -input saved.mbox -to test@test.com"),
        configure=configure,
        run=run,
    ),
}
