"""The spool: where an accepted message waits until its routing job has finished.

Two kinds, one interface:

* ``MaildirSpool`` (default): one file per message in a Maildir under
  ``spool_dir``: a line of JSON (the envelope) then the message bytes. A file
  appears in ``new/`` only complete and fsynced; it is removed when the
  routing job is done. Several hosts may share the directory.
* ``RedisSpool``: the same record in a Redis hash, indexed by a sorted set;
  durable only as far as the Redis AOF is (the receiver checks that).

A routing job carries the key, never the mail ("Redis holds pointers, disk
holds mail"); loading a key that is gone returns None, so running a job twice
is harmless.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis

from lamson import maildir
from lamson.envelope import Envelope
from lamson.process import alive

#: What lamson.maildir.new_key writes: time, microseconds, pid, counter, host.
_WRITER = re.compile(r"^\d+\.M\d+P(\d+)Q\d+\.(.+)$")

REDIS_PREFIX = "lamson:spool:"
REDIS_INDEX = "lamson:spool"


@dataclass(frozen=True)
class Spooled:
    """One message in the spool."""

    key: str
    envelope: Envelope
    data: bytes


class Spool(Protocol):
    """What the receiver, the workers and the sweeper need of a spool."""

    def put(self, envelope: Envelope, data: bytes) -> str: ...

    def get(self, key: str) -> Spooled | None: ...

    def remove(self, key: str) -> None: ...

    def keys(self, older_than: float = 0.0) -> list[str]: ...

    def cleanup(self) -> int: ...


def encode(envelope: Envelope, data: bytes) -> bytes:
    """The on-disk record: the envelope's JSON line, LF, the raw message."""
    return envelope.to_json() + b"\n" + data


def decode(key: str, record: bytes) -> Spooled:
    head, _, data = record.partition(b"\n")
    return Spooled(key, Envelope.from_json(head), data)


class MaildirSpool:
    """A spool in a Maildir; safe to share between processes and hosts."""

    #: tmp/ files older than this were left by a writer that died.
    STALE_TMP = 15 * 60

    def __init__(self, path: str | os.PathLike[str], *, sync: bool = True) -> None:
        self.path = maildir.ensure(path)
        self.sync = sync

    def put(self, envelope: Envelope, data: bytes) -> str:
        return maildir.write(self.path, encode(envelope, data), sync=self.sync)

    def get(self, key: str) -> Spooled | None:
        path = self.path / "new" / maildir.check_key(key)
        try:
            record = path.read_bytes()
        except FileNotFoundError:
            return None
        return decode(key, record)

    def remove(self, key: str) -> None:
        try:
            os.unlink(self.path / "new" / maildir.check_key(key))
        except FileNotFoundError:
            pass

    def keys(self, older_than: float = 0.0) -> list[str]:
        names = maildir.keys(self.path, "new")
        if older_than <= 0:
            return names
        limit = time.time() - older_than
        old = []
        for name in names:
            try:
                if os.stat(self.path / "new" / name).st_mtime < limit:
                    old.append(name)
            except FileNotFoundError:
                continue
        return old

    def cleanup(self) -> int:
        """Remove partial files whose writer is gone: old ones, and any whose process on this host died.

        A receiver killed mid-write leaves its file in tmp/; its name says
        which pid on which host wrote it, so on that host it can go at once
        instead of after STALE_TMP (other hosts' files wait for the age limit).
        """
        removed = len(maildir.clean_tmp(self.path, self.STALE_TMP))
        host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        for name in maildir.keys(self.path, "tmp"):
            match = _WRITER.match(name)
            if match and match.group(2) == host and not alive(int(match.group(1))):
                try:
                    os.unlink(self.path / "tmp" / name)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def __repr__(self) -> str:
        return f"MaildirSpool({str(self.path)!r})"


class RedisSpool:
    """A spool in Redis: a hash per message, a sorted set (by arrival time) to sweep."""

    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn

    def put(self, envelope: Envelope, data: bytes) -> str:
        key = maildir.new_key()
        now = time.time()
        pipe = self.conn.pipeline(transaction=True)
        pipe.hset(REDIS_PREFIX + key, mapping={"envelope": envelope.to_json(), "data": data})
        pipe.zadd(REDIS_INDEX, {key: now})
        pipe.execute()
        return key

    def get(self, key: str) -> Spooled | None:
        env, data = self.conn.hmget(REDIS_PREFIX + key, ["envelope", "data"])
        if env is None:
            return None
        return Spooled(key, Envelope.from_json(env), data or b"")

    def remove(self, key: str) -> None:
        pipe = self.conn.pipeline(transaction=True)
        pipe.delete(REDIS_PREFIX + key)
        pipe.zrem(REDIS_INDEX, key)
        pipe.execute()

    def keys(self, older_than: float = 0.0) -> list[str]:
        limit = time.time() - older_than if older_than > 0 else "+inf"
        return [k.decode() for k in self.conn.zrangebyscore(REDIS_INDEX, "-inf", limit)]

    def cleanup(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"RedisSpool({self.conn!r})"


def open_spool(settings: object, conn: redis.Redis | None = None) -> Spool:
    """The spool the settings name (``spool`` = "maildir" or "redis")."""
    if getattr(settings, "spool", "maildir") == "redis":
        if conn is None:
            raise ValueError("the Redis spool needs a Redis connection")
        return RedisSpool(conn)
    return MaildirSpool(Path(settings.spool_dir))  # type: ignore[attr-defined]
