"""``lamson passwd``: a line of the submission users file (lamson.receiver.auth).

It asks for the password twice (or reads one line from standard input with
``-stdin``) and prints ``USER:scrypt$N$r$p$salt$hash``; with ``-file`` it
adds the user to that file, or replaces their line, and keeps the file
readable by its owner only. The receiver reads the file at start: restart it
after a change. See docs/security.md, "STARTTLS and submission".
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from lamson.cli.framework import Command, CommandError, Parser, option


def configure(parser: Parser) -> None:
    parser.add_argument("user", metavar="USER", help="the login name (no ':' or whitespace)")
    option(parser, "file", default=None, help="users file to add the user to, or update (created 0600 if missing)")
    option(parser, "stdin", action="store_true", help="read the password from the first line of standard input")


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise CommandError("the passwords differ")
    if not password:
        raise CommandError("empty password")
    return password


def update_file(path: Path, user: str, line: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [each for each in lines if each.partition(":")[0].strip() != user]
    kept.append(line)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(kept) + "\n")
    os.replace(temporary, path)


def run(args: argparse.Namespace) -> int:
    from lamson.receiver.auth import hash_password

    user = args.user
    if not user or ":" in user or any(ch.isspace() for ch in user) or not user.isprintable():
        raise CommandError(f"bad user name {user!r}: no ':', whitespace or control characters")
    line = f"{user}:{hash_password(read_password(args.stdin))}"
    if args.file:
        try:
            update_file(Path(args.file), user, line)
        except OSError as exc:
            raise CommandError(f"cannot write {args.file}: {exc.strerror or exc}") from None
        print(f"{user} written to {args.file}")
    else:
        print(line)
    return 0


COMMANDS = {
    "passwd": Command(
        name="passwd",
        summary="add a user to the submission users file (AUTH on the receiver's submission port)",
        examples=("lamson passwd alice -file config/submission_users", "echo 'pw' | lamson passwd alice -stdin"),
        configure=configure,
        run=run,
        description=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    ),
}
