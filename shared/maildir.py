"""Durable Maildir writes: the one place Lamson puts mail on disk.

A message is written in ``tmp/``, fsynced, renamed into ``new/``, and ``new/``
is fsynced, so a reader never sees a partial file and a crash after the call
returns cannot lose it. The standard library's ``mailbox.Maildir`` does not
fsync, which is why this small module exists; reading and listing are left
to it or to plain ``os.scandir``.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lamson.recycle import Recycler

SUBDIRS = ("tmp", "new", "cur")

#: A Maildir key as Lamson (and most MUAs) write them: no slash, no NUL,
#: no leading dot, printable ASCII. ``:2,FLAGS`` info suffixes are allowed.
KEY_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.,=\-]{0,254}(:2,[A-Za-z]*)?$")

_counter = itertools.count()
_HOST = socket.gethostname().replace("/", r"\057").replace(":", r"\072")


class BadKey(ValueError):
    """A key that is not a Maildir name, or that would resolve outside the Maildir."""


def ensure(path: str | os.PathLike[str]) -> Path:
    """Create the Maildir (and its tmp/new/cur) if needed; return its path."""
    root = Path(path)
    for sub in SUBDIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def new_key() -> str:
    """A unique name: time, microseconds (six digits, so names of one second sort by time), pid,
    counter, host (shared Maildirs across hosts)."""
    now = time.time()
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    return f"{sec}.M{usec:06d}P{os.getpid()}Q{next(_counter)}.{_HOST}"


_ORDER = re.compile(r"(\d+)\.(?:M(\d+))?(?:P\d+)?(?:Q(\d+))?")


def key_order(name: str) -> tuple[int, int, int, str]:
    """Sort key of a Maildir name by the time in it: ``SECONDS.M<usec>P<pid>Q<n>...``.

    The microseconds are compared as numbers: names written by other programs
    (or by older Lamsons) do not pad them, so ``M8640`` is earlier than
    ``M10155`` although it sorts after it as text. Names without a time come first.
    """
    found = _ORDER.match(name)
    if found is None:
        return (0, 0, 0, name)
    return (int(found[1]), int(found[2] or 0), int(found[3] or 0), name)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: str | os.PathLike[str], data: bytes, *, sync: bool = True, reused: bool = False) -> None:
    """Create ``path`` (which must not exist) holding ``data``, fsynced; removed again on any error.

    ``reused``: ``path`` is a file taken for reuse (lamson.recycle), overwritten instead of created.
    """
    fd = -1
    if reused:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        except OSError:  # not writable by this process after all: a new file, as usual
            try:
                os.unlink(path)
            except OSError:
                pass
    if fd < 0:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        raise


def write(root: str | os.PathLike[str], data: bytes, key: str | None = None, *, sync: bool = True,
          recycler: Recycler | None = None) -> str:
    """Store ``data`` durably as ``root/new/KEY`` and return KEY.

    On any error the temporary file is removed and the error raised: the
    caller (the receiver) answers 451 and nothing half-written is left.
    """
    key = key or new_key()
    root = os.fspath(root)  # plain strings: pathlib costs more than the write on this path
    tmp = os.path.join(root, "tmp", key)
    write_file(tmp, data, sync=sync, reused=recycler is not None and recycler.take(tmp))
    try:
        os.rename(tmp, os.path.join(root, "new", key))
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync:
        fsync_dir(os.path.join(root, "new"))
    return key


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe Maildir name, else raise BadKey."""
    if not isinstance(key, str) or "\x00" in key or not KEY_RE.match(key):
        raise BadKey(f"not a Maildir key: {key!r}")
    return key


def locate(root: str | os.PathLike[str], key: str) -> Path | None:
    """The file for ``key`` in new/ or cur/ (any info suffix), or None.

    The key is validated first and the result must be a regular file inside
    the Maildir (no symlink out), so a key from a user cannot reach elsewhere.
    """
    check_key(key)
    root = Path(root).resolve()
    base = key.split(":2,", 1)[0]
    for sub in ("new", "cur"):
        folder = root / sub
        if folder.is_symlink():
            raise BadKey(f"{folder} is a symlink; refusing to read a Maildir through it")
        exact = folder / key
        candidates = [exact] if exact.exists() or exact.is_symlink() else []
        if not candidates and sub == "cur":
            candidates = [p for p in folder.glob(glob_escape(base) + ":2,*")]
        for path in candidates:
            if path.is_symlink() or not path.is_file():
                raise BadKey(f"not a regular file in the Maildir: {key!r}")
            if path.resolve().parent != folder:
                raise BadKey(f"key resolves outside the Maildir: {key!r}")
            return path
    return None


def glob_escape(text: str) -> str:
    """Escape glob metacharacters (keys never contain them, but be exact)."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def keys(root: str | os.PathLike[str], sub: str = "new") -> list[str]:
    """Keys in one subfolder, oldest first (names start with the time).

    A subfolder that is itself a symlink is refused (BadKey): listing or
    popping through it would reach files outside the Maildir.
    """
    folder = Path(root) / sub
    if folder.is_symlink():
        raise BadKey(f"{folder} is a symlink; refusing to read a Maildir through it")
    try:
        names = [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    return sorted((n for n in names if not n.startswith(".")), key=key_order)


def clean_tmp(root: str | os.PathLike[str], older_than: float) -> list[str]:
    """Remove files left in tmp/ by a writer that died; return their names."""
    removed = []
    limit = time.time() - older_than
    for entry in os.scandir(Path(root) / "tmp"):
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < limit:
                os.unlink(entry.path)
                removed.append(entry.name)
        except FileNotFoundError:
            continue
    return removed
