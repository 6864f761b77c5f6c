"""Spool files are used again instead of deleted and created.

Every message used to cost one file created (the receiver's spool entry, a
reply in the outbox) and one deleted when it was done. On ext4 without a
journal (this project's machines, and many VM images) creating a file skips
every inode deleted in the last few seconds, reading each to find out: under
load, with thousands of files deleted a second, one ``open(O_CREAT)`` cost
0.3–0.9 ms of CPU, more than the rest of writing the message, and it grew
the longer a load ran. Renaming and rewriting an existing file costs a
fraction of that on every filesystem.

So a spool keeps the files of finished messages in ``free/`` beside
``tmp/``, ``new/`` and ``cur/``: :meth:`Recycler.give` renames a finished
file there (instead of unlinking it) and :meth:`Recycler.take` renames one
to the ``tmp/`` name a new message is written under, which is then opened
with ``O_TRUNC`` and written as before. Each rename is atomic, so processes
and hosts sharing the Maildir never get the same file. A file in ``free/``
is garbage, never mail: nothing reads it, it is overwritten before use, and
:func:`trim` keeps at most ``limit`` of them.

A fresh spool has nothing to reuse, and a burst runs ahead of the workers
that free files: :func:`reserve` creates empty ones when a process starts
(``spool_reserve``, 500 by default: the receiver for the spool, each router
worker for the outbox), as a database keeps log segments ready, so a burst
never pays for new inodes while clients wait.
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Any

log = logging.getLogger("lamson.spool")

FREE = "free"
#: The most files a spool keeps for reuse (what is beyond goes at the next cleanup).
LIMIT = 2000
#: How often a process with nothing in hand looks in free/ again (seconds).
RESCAN = 0.1


class Recycler:
    """One process's view of a Maildir's ``free/`` files."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.free = os.path.join(os.fspath(root), FREE)
        os.makedirs(self.free, mode=0o700, exist_ok=True)
        self._prefix = self.free + os.sep
        self._names: list[str] = []
        self._scanned = 0.0

    def take(self, path: str) -> bool:
        """Move a free file to ``path`` (which must not exist); False when there is none to take."""
        for _ in range(2):
            while self._names:
                try:
                    os.rename(self._prefix + self._names.pop(), path)
                    return True
                except FileNotFoundError:  # another process took it first
                    continue
                except OSError:  # not ours to move (permissions): make files the usual way
                    self._names.clear()
                    return False
            now = time.monotonic()
            if now - self._scanned < RESCAN:
                return False
            self._scanned = now
            try:
                self._names = [entry.name for entry in os.scandir(self.free)]
            except OSError:
                return False
            random.shuffle(self._names)  # processes sharing the folder do not all race for the same file
        return False

    def give(self, path: str, name: str) -> bool:
        """Keep the finished file ``path`` for reuse as ``free/name``; False when ``path`` is gone."""
        try:
            os.rename(path, self._prefix + name)
            return True
        except FileNotFoundError:
            return False
        except OSError:  # free/ not writable by this process: delete as before
            try:
                os.unlink(path)
                return True
            except FileNotFoundError:
                return False


def reserve(root: str | os.PathLike[str], count: int) -> int:
    """Add empty files to the Maildir ``root``'s ``free/`` until it holds ``count``; how many were made."""
    free = os.path.join(os.fspath(root), FREE)
    os.makedirs(free, mode=0o700, exist_ok=True)
    try:
        have = sum(1 for _ in os.scandir(free))
    except OSError:
        return 0
    made = 0
    tag = f"r{os.getpid()}.{time.time_ns()}"
    while have + made < count:
        try:
            os.close(os.open(os.path.join(free, f"{tag}.{made}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError:  # disk full, permissions: the writes make files as they go instead
            break
        made += 1
    return made


def reserve_files(spool: Any, settings: Any) -> None:
    """At a process's start: ``spool_reserve`` empty files kept ready, if ``spool`` is a Maildir one."""
    from lamson.typed_settings import Settings

    keep = getattr(spool, "reserve", None)
    count = Settings.of(settings).spool_reserve
    if keep is None or count <= 0:
        return
    try:
        made = keep(count)
    except OSError as exc:  # the writes make files as they go instead
        log.warning("no files kept ready in %s: %s", spool.path, exc)
        return
    if made:
        log.info("%d empty files kept ready in %s", made, os.path.join(os.fspath(spool.path), FREE))


def trim(root: str | os.PathLike[str], limit: int = LIMIT) -> int:
    """Delete free files beyond ``limit`` in the Maildir ``root``; how many went."""
    free = os.path.join(os.fspath(root), FREE)
    try:
        names = [entry.name for entry in os.scandir(free)]
    except FileNotFoundError:
        return 0
    removed = 0
    for name in names[limit:]:
        try:
            os.unlink(os.path.join(free, name))
            removed += 1
        except FileNotFoundError:
            continue
    return removed
