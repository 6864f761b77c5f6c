"""``lamson gen -project NAME``: a new application from the scaffold in lamson/scaffold.

The scaffold is copied as is, except two placeholders that tie the project
to the Python that generated it: ``@LAMSON_BIN_DIR@`` (so supervisord finds
``lamson`` without an activated virtualenv) and ``@LAMSON@`` (the absolute
``lamson`` command, for mutt's sendmail).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from lamson.cli.framework import Command, CommandError, Parser, UsageError, option

SCAFFOLD = Path(__file__).resolve().parent.parent / "scaffold"
SKIP = {"__pycache__", ".pytest_cache"}
#: Folders a project needs that hold nothing yet.
EMPTY_DIRS = ("logs", "run", "app/data")
#: Mail, queues, the Redis password and logs with addresses: the owner's only (docs/security.md, "Redis").
PRIVATE_DIRS = ("logs", "run")


def placeholders() -> dict[str, str]:
    """Placeholder -> value for this interpreter."""
    bin_dir = Path(sys.executable).parent
    lamson = bin_dir / "lamson"
    command = str(lamson) if lamson.exists() else f"{sys.executable} -m lamson.cli"
    return {"@LAMSON_BIN_DIR@": str(bin_dir), "@LAMSON@": command}


def configure(parser: Parser) -> None:
    option(parser, "project", default=None, metavar="NAME", help="directory to create")
    option(parser, "FORCE", "force", action="store_true", dest="force",
           help="write into an existing directory, overwriting scaffold files")
    parser.add_argument("name", nargs="?", metavar="NAME", help="same as -project NAME")


def copy_tree(src: Path, dest: Path, values: dict[str, str]) -> list[Path]:
    """Copy the scaffold, filling in placeholders; return the files written."""
    written = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in SKIP for part in rel.parts) or path.suffix == ".pyc":
            continue
        target = dest / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        data = path.read_bytes()
        for key, value in values.items():
            data = data.replace(key.encode(), value.encode())
        target.write_bytes(data)
        shutil.copymode(path, target)
        written.append(target)
    return written


def run(args: argparse.Namespace) -> int:
    if args.project and args.name and args.project != args.name:
        raise UsageError(f"lamson gen: two project names given ({args.project!r} and {args.name!r})")
    name = args.project or args.name
    if not name:
        raise UsageError("lamson gen: give the project name: lamson gen -project NAME")
    dest = Path(name)
    if dest.exists() and not dest.is_dir():
        raise CommandError(f"{name} exists and is not a directory")
    if dest.exists() and any(dest.iterdir()) and not args.force:
        raise CommandError(f"{name} already exists; use -FORCE to write the scaffold into it")
    if not SCAFFOLD.is_dir():
        raise CommandError(f"the project scaffold is missing from this installation ({SCAFFOLD})")
    dest.mkdir(parents=True, exist_ok=True)
    written = copy_tree(SCAFFOLD, dest, placeholders())
    for folder in EMPTY_DIRS:
        (dest / folder).mkdir(parents=True, exist_ok=True)
    for folder in PRIVATE_DIRS:
        (dest / folder).chmod(0o700)
    print(f"created {name}/ ({len(written)} files). Next:")
    print(f"  cd {name} && pytest && lamson start && lamson send -sender me@localhost -to hello@test.com "
          "-subject hi -body hello && lamson queue -keys")
    return 0


COMMANDS = {
    "gen": Command(
        name="gen",
        summary="create a new application: handlers, templates, config, deploy, tests, muttrc",
        examples=("lamson gen -project mymailserver", "lamson gen mymailserver -FORCE"),
        configure=configure,
        run=run,
        description="Create a new Lamson application in NAME: app/ (handlers/sample.py, templates, model,\n"
                    "data), config/ (settings.py, boot.py, testing.py), deploy/ (supervisord.conf,\n"
                    "redis.conf), logs/, run/, tests/ and a muttrc. It passes `pytest` as generated and\n"
                    "runs with `lamson start`. An existing non-empty directory is refused without -FORCE.",
    ),
}
