"""Postfix's load tools for the benchmarks, fetched by the bench itself from the distribution.

bench/pipeline.py, bench/compare.py and bench/fanout.py drive the pipeline with
Postfix's ``smtp-source`` (a load client in C, cheap enough not to take the
cores it measures) and deliver the replies to Postfix's ``smtp-sink`` (a smart
host in C). A clone of this repository must be able to run them without a
Postfix installation, and installing the ``postfix`` package would set up a
mail server on port 25 the bench does not want. So the tools come out of the
package file instead: ``apt-get download postfix`` (no installation, no
maintainer scripts), ``dpkg -x`` into a temporary folder, and the three
programs (``smtp-source``, ``smtp-sink``, ``posttls-finger``) plus the shared
libraries they link (``usr/lib/postfix/libpostfix-*.so*``, outside the linker's
search path) are copied into ``bench/.cache/postfix-tools/``. Each tool there
is a small shell script that sets ``LD_LIBRARY_PATH`` to the copied libraries
and replaces itself with the real program (``exec``), so the process a caller
starts *is* the tool (its pid can be signalled). Nothing is installed, nothing listens until a
bench starts a sink.

    .venv/bin/python bench/loadtools.py      # prints the folder, fetching it once

On a system without apt (not Debian or Ubuntu), set ``LAMSON_BENCH_POSTFIX_TOOLS``
to a folder holding ``smtp-source`` and ``smtp-sink`` (Postfix's own build).
Not used by the test suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
FOLDER = CACHE / "postfix-tools"
TOOLS = ("smtp-source", "smtp-sink", "posttls-finger")
#: The tools every bench needs; posttls-finger is kept for looking at TLS by hand.
NEEDED = ("smtp-source", "smtp-sink")
OVERRIDE = "LAMSON_BENCH_POSTFIX_TOOLS"

WRAPPER = """#!/bin/sh
# Postfix's {tool} from the distribution's package, made by bench/loadtools.py.
# Its libraries (libpostfix-*) are beside it, not in the linker's search path.
here=$(cd "$(dirname "$0")" && pwd)
LD_LIBRARY_PATH="$here/lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" exec "$here/bin/{tool}" "$@"
"""


def postfix_tools(folder: Path = FOLDER) -> Path:
    """The folder holding ``smtp-source`` and ``smtp-sink`` (wrappers ready to run), made once.

    ``LAMSON_BENCH_POSTFIX_TOOLS`` names another folder (a system without apt); otherwise the
    folder is built from the ``postfix`` package the first time and used as is afterwards.
    """
    override = os.environ.get(OVERRIDE)
    if override:
        given = Path(override)
        missing = [tool for tool in NEEDED if not os.access(given / tool, os.X_OK)]
        if missing:
            raise SystemExit(f"bench: {OVERRIDE}={given} has no executable {', '.join(missing)}")
        return given
    if ready(folder):
        return folder
    build(folder)
    return folder


def ready(folder: Path) -> bool:
    """Whether ``folder`` holds every tool's wrapper and program (a build cut short is not ready)."""
    return all(os.access(folder / tool, os.X_OK) and (folder / "bin" / tool).exists() for tool in TOOLS)


def build(folder: Path) -> None:
    """Fetch the ``postfix`` package, unpack it and lay out ``folder``: bin/ (the programs), lib/ (their
    libraries) and one wrapper per tool. The layout is made beside ``folder`` and renamed into place,
    so two benches starting at once never see half a folder."""
    for command in ("apt-get", "dpkg"):
        if shutil.which(command) is None:
            raise SystemExit(f"bench: {command} not found: the load tools come from Debian's postfix package; "
                             f"on another system set {OVERRIDE} to a folder with smtp-source and smtp-sink")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="postfix-tools-", dir=folder.parent) as scratch:
        work = Path(scratch)
        package = download(work / "deb")
        unpacked = work / "root"
        subprocess.run(["dpkg", "-x", str(package), str(unpacked)], check=True)
        staged = work / "tools"
        (staged / "bin").mkdir(parents=True)
        (staged / "lib").mkdir()
        for tool in TOOLS:
            program = unpacked / "usr" / "sbin" / tool
            if not program.exists():
                raise SystemExit(f"bench: {package.name} has no usr/sbin/{tool}")
            shutil.copy2(program, staged / "bin" / tool)
            wrapper = staged / tool
            wrapper.write_text(WRAPPER.format(tool=tool))
            wrapper.chmod(0o755)
        libraries = sorted((unpacked / "usr" / "lib" / "postfix").glob("libpostfix-*.so*"))
        if not libraries:
            raise SystemExit(f"bench: {package.name} has no usr/lib/postfix/libpostfix-*.so*")
        for library in libraries:
            shutil.copy2(library, staged / "lib" / library.name, follow_symlinks=False)
        (staged / "VERSION").write_text(package.name + "\n")
        check(staged)
        if ready(folder):  # another bench finished first
            return
        if folder.exists():  # a folder left half made by a run that was killed
            shutil.rmtree(folder)
        os.rename(staged, folder)


def download(into: Path) -> Path:
    """``apt-get download postfix`` into ``into``; when the package lists are missing or stale (a fresh
    container), ``apt-get update`` once and try again. Returns the .deb file."""
    into.mkdir(parents=True)
    print(f"bench: fetching Postfix's load tools (apt-get download postfix) into {FOLDER} ...",
          file=sys.stderr, flush=True)
    fetch = ["apt-get", "download", "-q", "postfix"]
    first = subprocess.run(fetch, cwd=into, capture_output=True, text=True)
    if first.returncode != 0:
        update = subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
        if update.returncode != 0:
            raise SystemExit("bench: apt-get download postfix failed and apt-get update too (root needed?):\n"
                             + first.stderr.strip() + "\n" + update.stderr.strip())
        again = subprocess.run(fetch, cwd=into, capture_output=True, text=True)
        if again.returncode != 0:
            raise SystemExit("bench: apt-get download postfix failed:\n" + again.stderr.strip())
    found = sorted(into.glob("postfix_*.deb"))
    if not found:
        raise SystemExit(f"bench: apt-get download postfix left no postfix_*.deb in {into}")
    return found[-1]


def check(staged: Path) -> None:
    """Run smtp-source without arguments through its wrapper: it prints its usage and exits non-zero,
    but a missing library would show as the loader's error instead, before anything depends on it."""
    probe = subprocess.run([str(staged / "smtp-source")], capture_output=True, text=True)
    if "usage" not in probe.stderr:
        raise SystemExit("bench: the unpacked smtp-source does not run:\n" + probe.stderr.strip())


def main() -> None:
    print(postfix_tools())


if __name__ == "__main__":
    main()
