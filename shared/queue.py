"""The guide's Maildir queue: ``Queue("run/posts").push(message)``.

A queue is a Maildir any tool can read (mutt, ``lamson queue``), written
durably through :mod:`lamson.maildir`. ``pop`` claims a message by renaming it,
so several processes (or hosts sharing the directory) can pop from one queue
and each message goes to exactly one of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lamson import maildir


def as_bytes(message: Any) -> bytes:
    """Bytes of a message given as bytes, str, MailRequest/MailResponse or email Message."""
    if isinstance(message, bytes | bytearray | memoryview):
        return bytes(message)
    if isinstance(message, str):
        return message.encode("utf-8", "surrogateescape")
    if hasattr(message, "as_bytes"):
        return message.as_bytes()
    return bytes(message)


class Queue:
    """A Maildir used as a queue of messages."""

    def __init__(self, path: str | os.PathLike[str], *, sync: bool = True) -> None:
        self.path = maildir.ensure(path)
        self.sync = sync

    def push(self, message: Any) -> str:
        """Store a message durably; return its key."""
        return maildir.write(self.path, as_bytes(message), sync=self.sync)

    def pop(self) -> tuple[str | None, Any]:
        """Claim and remove the oldest message: ``(key, MailRequest)``, or ``(None, None)`` when empty."""
        for sub in ("new", "cur"):
            for key in maildir.keys(self.path, sub):
                src = self.path / sub / key
                claimed = self.path / "tmp" / f".pop.{os.getpid()}.{key}"
                try:
                    os.rename(src, claimed)
                except FileNotFoundError:
                    continue  # another process took it
                try:
                    data = claimed.read_bytes()
                finally:
                    os.unlink(claimed)
                return key, self._request(data)
        return None, None

    def get(self, key: str) -> Any:
        """The message stored under ``key`` (a MailRequest), or None if there is none."""
        data = self.get_bytes(key)
        return None if data is None else self._request(data)

    def get_bytes(self, key: str) -> bytes | None:
        """The raw bytes stored under ``key``, or None. Raises maildir.BadKey for unsafe keys."""
        path = maildir.locate(self.path, key)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, key: str) -> bool:
        """Delete one message; True if it was there. Raises maildir.BadKey for unsafe keys."""
        path = maildir.locate(self.path, key)
        if path is None:
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def keys(self) -> list[str]:
        """Every key, new/ then cur/, oldest first within each."""
        return maildir.keys(self.path, "new") + maildir.keys(self.path, "cur")

    def count(self) -> int:
        return len(self.keys())

    def clear(self) -> int:
        """Remove every message; return how many were removed."""
        removed = 0
        for key in self.keys():
            removed += self.remove(key)
        return removed

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for key in self.keys():
            message = self.get(key)
            if message is not None:
                yield key, message

    def __repr__(self) -> str:
        return f"Queue({str(self.path)!r})"

    @staticmethod
    def _request(data: bytes) -> Any:
        from lamson.mail import MailRequest  # the mail model is optional for raw use

        return MailRequest(Peer="queue", From=None, To=None, Data=data)


def open_queue(path: str | os.PathLike[str]) -> Queue:
    """A Queue over ``path``, created if missing."""
    return Queue(Path(path))
