"""``lamson gen -project NAME [-template osb|list]``: a new application.

Without ``-template`` the scaffold in lamson/scaffold is copied as is, except
two placeholders that tie the project to the Python that generated it:
``@LAMSON_BIN_DIR@`` (so supervisord finds ``lamson`` without an activated
virtualenv) and ``@LAMSON@`` (the absolute ``lamson`` command, for mutt's
sendmail).

``-template NAME`` copies one of the example applications instead (the
repository's examples/ folder, shipped in the wheel as lamson/examples). The
examples run in place from a checkout, so they find ``lamson`` through the
checkout's .venv by relative paths; generating one rewrites those paths
(:data:`IN_PLACE`) to this interpreter's, as the placeholders do for the
scaffold. What an example left in its run/ and logs/ (mail, Redis data, logs)
is never copied.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from lamson.cli.framework import Command, CommandError, Parser, UsageError, option

SCAFFOLD = Path(__file__).resolve().parent.parent / "scaffold"
#: Where the example applications are: in a wheel lamson/examples, in a checkout the top-level examples/.
EXAMPLES_DIRS = (Path(__file__).resolve().parents[1] / "examples", Path(__file__).resolve().parents[2] / "examples")
SKIP = {"__pycache__", ".pytest_cache"}
#: Folders whose contents are state, not application (mail, Redis data, logs, pages an example
#: rendered while it ran): only the README.md at their top is copied.
STATE_DIRS = (Path("run"), Path("logs"), Path("app", "data"), Path("app", "store"))
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


def in_place(values: dict[str, str]) -> dict[str, str]:
    """An example's paths to the checkout's virtualenv -> this interpreter's (see the module docstring)."""
    return {
        "%(here)s/../../../.venv/bin": values["@LAMSON_BIN_DIR@"],
        "../../.venv/bin/lamson": values["@LAMSON@"],
        "../../.venv/bin/": values["@LAMSON_BIN_DIR@"] + "/",
    }


def templates() -> dict[str, Path]:
    """Template name -> example folder: every example that is a whole project (settings and deploy files)."""
    found: dict[str, Path] = {}
    for root in EXAMPLES_DIRS:
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if (folder / "config" / "settings.py").is_file() and (folder / "deploy" / "supervisord.conf").is_file():
                found.setdefault(folder.name, folder)
    return found


def configure(parser: Parser) -> None:
    option(parser, "project", default=None, metavar="NAME", help="directory to create")
    option(parser, "FORCE", "force", action="store_true", dest="force",
           help="write into an existing directory, overwriting scaffold files")
    option(parser, "template", default=None, metavar="EXAMPLE",
           help="start from an example application instead of the scaffold: osb (a blog by mail), "
                "list (a mailing list)")
    parser.add_argument("name", nargs="?", metavar="NAME", help="same as -project NAME")


def copy_tree(src: Path, dest: Path, values: dict[str, str]) -> list[Path]:
    """Copy the scaffold, filling in placeholders; return the files written."""
    written = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in SKIP for part in rel.parts) or path.suffix == ".pyc":
            continue
        if any(rel.is_relative_to(state) and rel not in (state, state / "README.md") for state in STATE_DIRS):
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
    values = placeholders()
    if args.template:
        available = templates()
        if args.template not in available:
            names = ", ".join(sorted(available)) or "none in this installation"
            raise UsageError(f"lamson gen: no template {args.template!r} (templates: {names})")
        source = available[args.template]
        values = {**values, **in_place(values)}
    else:
        source = SCAFFOLD
    if not source.is_dir():
        raise CommandError(f"the project scaffold is missing from this installation ({source})")
    dest.mkdir(parents=True, exist_ok=True)
    written = copy_tree(source, dest, values)
    for folder in EMPTY_DIRS:
        (dest / folder).mkdir(parents=True, exist_ok=True)
    for folder in PRIVATE_DIRS:
        (dest / folder).chmod(0o700)
    print(f"created {name}/ ({len(written)} files). Next:")
    if args.template:
        print(f"  cd {name} && pytest && lamson start   (then follow {name}/README.md)")
    else:
        print(f"  cd {name} && pytest && lamson start && lamson send -sender me@localhost -to hello@test.com "
              "-subject hi -body hello && lamson queue -keys")
    return 0


COMMANDS = {
    "gen": Command(
        name="gen",
        summary="create a new application: handlers, templates, config, deploy, tests, muttrc",
        examples=("lamson gen -project mymailserver", "lamson gen mymailserver -FORCE",
                  "lamson gen -project myblog -template osb", "lamson gen -project mylists -template list"),
        configure=configure,
        run=run,
        description="Create a new Lamson application in NAME: app/ (handlers/sample.py, templates, model,\n"
                    "data), config/ (settings.py, boot.py, testing.py), deploy/ (supervisord.conf,\n"
                    "redis.conf), logs/, run/, tests/ and a muttrc. It passes `pytest` as generated and\n"
                    "runs with `lamson start`. An existing non-empty directory is refused without -FORCE.\n"
                    "-template osb|list starts from an example application instead: the one-shot blog\n"
                    "or the mailing list manager of examples/ (each with its own README walkthrough).",
    ),
}
