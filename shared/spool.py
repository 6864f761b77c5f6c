"""The spool: every message is a file until it is done.

One lifecycle for incoming mail (the spool), deferred queues and replies (the
outbox), kept by the spool itself, not by the job queue:

    waiting (``new/KEY``) ──claim──► in flight (``cur/KEY,WORKER``) ──finish──► gone
          ▲                               │
          └──────── release / recover ────┘──── park ──► the parked Maildir, with the reason

* **put** writes ``tmp/KEY``, fsyncs it, renames it into ``new/`` and fsyncs
  ``new/`` (or, with ``sync=False``, leaves the fsync to a later group
  :meth:`MaildirSpool.commit`).
* **claim** renames ``new/KEY`` to ``cur/KEY,WORKER``: atomic, so of several
  workers or hosts sharing the directory exactly one gets it, and ``ls cur/``
  shows what is in flight and who holds it.
* **finish** moves the claim to ``free/``, where the next message written
  takes it (:mod:`lamson.recycle`: creating files is what costs on ext4
  without a journal). **release** puts it back in ``new/`` (its
  modification time is when it is due again, so a retry can wait), rewriting
  the record first when its envelope changed (attempt count, recipients left).
* **recover** returns the claims of dead workers to ``new/`` with one more
  attempt; **park** moves a message that must not be tried again into a
  Maildir for people (``run/undeliverable``), tagged with its envelope and
  the reason, from where ``lamson queue -requeue`` sends it back.

An rq job is only a wake-up that carries keys; a job that finds its key gone
does nothing, so running one twice is harmless, and losing one loses nothing:
the sweeper wakes workers for whatever waits in ``new/``.

``RedisSpool`` keeps the same lifecycle in Redis (a hash per message, a
sorted set of waiting keys by due time, a hash of claims), durable as far as
the Redis AOF is.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import redis

from lamson import maildir, recycle
from lamson.connection import data as redis_data
from lamson.connection import members, text
from lamson.envelope import Envelope
from lamson.names import Names
from lamson.parked import park as write_parked
from lamson.process import alive
from lamson.recycle import Recycler
from lamson.settings import DEFAULTS

#: What lamson.maildir.new_key writes: time, microseconds, pid, counter, host.
_WRITER = re.compile(r"^\d+\.M\d+P(\d+)Q\d+\.(.+)$")

#: Separates the key from the worker id in a claimed file's name (neither contains it).
CLAIM_SEP = ","


@dataclass(frozen=True)
class Spooled:
    """One message in the spool: its key, envelope and bytes."""

    key: str
    envelope: Envelope
    data: bytes


class UnreadableRecord(Exception):
    """A claimed record whose envelope cannot be read: it is parked as it is, never retried."""

    def __init__(self, key: str, cause: Exception) -> None:
        super().__init__(f"unreadable spool record {key}: {type(cause).__name__}: {cause}")
        self.key = key
        self.cause = cause


def _decode_claimed(key: str, record: bytes) -> Spooled:
    try:
        return decode(key, record)
    except (ValueError, TypeError, KeyError) as exc:  # bad JSON, unknown schema, missing fields
        raise UnreadableRecord(key, exc) from exc


@dataclass(frozen=True)
class Claim:
    """A message in flight: who holds it and since when."""

    key: str
    worker: str
    since: float


class Spool(Protocol):
    """What the receiver, the workers, the relay and the sweeper need of a spool."""

    group: str
    #: The Maildir its messages are parked in (lamson.parked).
    parked: Path

    def put(self, envelope: Envelope, data: bytes, *, sync: bool = True, delay: float = 0.0) -> str: ...

    def commit(self, keys: Iterable[str]) -> None: ...

    def get(self, key: str) -> Spooled | None: ...

    def claim(self, key: str, worker: str) -> Spooled | None: ...

    def claim_waiting(self, worker: str, limit: int) -> list[Spooled]: ...

    def finish(self, key: str, worker: str) -> bool: ...

    def release(self, spooled: Spooled, worker: str, *, delay: float = 0.0,
                envelope: Envelope | None = None) -> bool: ...

    def park(self, spooled: Spooled, worker: str, reason: str) -> str: ...

    def park_unreadable(self, key: str, worker: str, reason: str) -> str | None: ...

    def where(self, key: str) -> str | None: ...

    def is_due(self, key: str) -> bool: ...

    def waiting(self, *, due: bool = False, older_than: float = 0.0) -> list[str]: ...

    def claims(self) -> list[Claim]: ...

    def recover(self, is_dead: Callable[[Claim], bool]) -> list[str]: ...

    def cleanup(self) -> int: ...


def encode(envelope: Envelope, data: bytes) -> bytes:
    """The on-disk record: the envelope's JSON line, LF, the raw message."""
    return envelope.to_json() + b"\n" + data


def decode(key: str, record: bytes) -> Spooled:
    head, _, data = record.partition(b"\n")
    return Spooled(key, Envelope.from_json(head), data)


def decode_plain(key: str, record: bytes, group: str, peer: str) -> Spooled:
    """A record, or a plain message (what ``Queue.push`` writes): its envelope from its headers."""
    if record.startswith(b'{"v":'):
        return decode(key, record)
    from email.parser import BytesHeaderParser
    from email.policy import compat32
    from email.utils import getaddresses, parseaddr

    headers = BytesHeaderParser(policy=compat32).parsebytes(record)
    sender = parseaddr(str(headers.get("From") or ""))[1].lower()
    rcpts = [a.lower() for _, a in getaddresses([str(v) for v in headers.get_all("To", [])]) if a]
    return Spooled(key, Envelope(mail_from=sender, rcpt_tos=tuple(dict.fromkeys(rcpts)), peer=peer, queue=group,
                                 received_at=key_time(key), extra={"plain": "1"}), record)


def key_time(key: str) -> float:
    """The time a key was made (its name starts with seconds and ``M``microseconds)."""
    try:
        sec, rest = key.split(".", 1)
        usec = rest[1:rest.index("P")] if rest.startswith("M") else "0"
        return int(sec) + int(usec) / 1e6
    except (ValueError, IndexError):
        return 0.0


class MaildirSpool:
    """A spool in a Maildir; safe to share between processes and hosts (one rename per step)."""

    #: tmp/ files older than this were left by a writer that died.
    STALE_TMP = 15 * 60

    def __init__(self, path: str | os.PathLike[str], *, group: str = "incoming",
                 parked: str | os.PathLike[str] | None = None, sync: bool = True, plain: bool = False) -> None:
        self.path = maildir.ensure(path)
        self.group = group
        #: A Maildir queue of plain messages (QueueReceiver): no envelope line, read from the headers.
        self.plain = plain
        self.parked = Path(parked) if parked is not None else self.path.parent / "undeliverable"
        self.sync = sync
        self._new = self.path / "new"
        self._cur = self.path / "cur"
        # The same as plain strings, for the per-message paths (pathlib costs more than the syscalls).
        self._path_s = os.fspath(self.path)
        self._new_s = os.fspath(self._new) + os.sep
        self._cur_s = os.fspath(self._cur) + os.sep
        #: Finished files are kept in free/ and written again for new messages (lamson.recycle); not in
        #: a plain Maildir queue, which other programs write: nothing would take them again.
        self._recycler = None if plain else Recycler(self._path_s)

    # -- writing ---------------------------------------------------------

    def put(self, envelope: Envelope, data: bytes, *, sync: bool = True, delay: float = 0.0) -> str:
        """Store a message as waiting (due ``delay`` seconds from now); durable on return unless
        ``sync=False`` (then :meth:`commit`)."""
        key = maildir.write(self._path_s, encode(envelope, data), sync=self.sync and sync, recycler=self._recycler)
        if delay > 0:
            due = time.time() + delay
            os.utime(self._new_s + key, (due, due))
        return key

    def reserve(self, count: int) -> int:
        """Keep ``count`` empty files ready for new messages (lamson.recycle.reserve); how many were made."""
        return recycle.reserve(self._path_s, count) if self._recycler is not None else 0

    def commit(self, keys: Iterable[str]) -> None:
        """Make messages put with ``sync=False`` durable: a group commit, one directory fsync.

        A key already claimed or finished needs nothing (whoever took it read
        it from the page cache; a reply already delivered cannot be lost).
        """
        if not self.sync:
            return
        synced = False
        for key in keys:
            try:
                fd = os.open(self._new_s + key, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
                synced = True
            finally:
                os.close(fd)
        if synced:
            maildir.fsync_dir(self._new)

    # -- reading -----------------------------------------------------------

    def get(self, key: str) -> Spooled | None:
        """Read a message, waiting or in flight, without claiming it."""
        maildir.check_key(key)
        try:
            return self._decode(key, (self._new / key).read_bytes())
        except FileNotFoundError:
            pass
        for claim in self._claim_names(key):
            try:
                return self._decode(key, (self._cur / claim).read_bytes())
            except FileNotFoundError:
                continue
        return None

    def where(self, key: str) -> str | None:
        """"waiting", "claimed", or None when the message is done (or was never here).

        Checked new/, cur/, new/ again: a message moves new → cur → gone, or
        cur → new on release, so no single move between two looks can make a
        live message look gone.
        """
        maildir.check_key(key)
        if os.path.exists(self._new / key):
            return "waiting"
        if self._claim_names(key):
            return "claimed"
        if os.path.exists(self._new / key):
            return "waiting"
        return None

    def is_due(self, key: str) -> bool:
        """Whether a waiting message's time has come (False if it is not waiting)."""
        try:
            return os.stat(self._new / maildir.check_key(key)).st_mtime <= time.time()
        except FileNotFoundError:
            return False

    def waiting(self, *, due: bool = False, older_than: float = 0.0) -> list[str]:
        """Keys waiting in new/, oldest first; ``due``: only those whose time has come
        (a released retry's modification time is when it is due); ``older_than``: only
        those due at least that many seconds ago."""
        names = maildir.keys(self.path, "new")
        if not due and older_than <= 0:
            return names
        limit = time.time() - max(older_than, 0.0)
        found = []
        for name in names:
            try:
                if os.stat(self._new / name).st_mtime <= limit:
                    found.append(name)
            except FileNotFoundError:
                continue
        return found

    def keys(self, older_than: float = 0.0) -> list[str]:
        """Waiting keys, oldest first (what ``lamson queue -keys`` and older callers ask for)."""
        return self.waiting(older_than=older_than)

    def claims(self) -> list[Claim]:
        """What is in flight: one entry per file in cur/."""
        found = []
        for name in maildir.keys(self.path, "cur"):
            key, sep, worker = name.partition(CLAIM_SEP)
            if not sep:
                continue
            try:
                since = os.stat(self._cur / name).st_ctime
            except FileNotFoundError:
                continue
            found.append(Claim(key, worker, since))
        return found

    def _claim_names(self, key: str) -> list[str]:
        prefix = key + CLAIM_SEP
        try:
            return [e.name for e in os.scandir(self._cur) if e.name.startswith(prefix)]
        except FileNotFoundError:
            return []

    # -- the lifecycle -------------------------------------------------------

    def claim(self, key: str, worker: str) -> Spooled | None:
        """Take a waiting message for ``worker``; None if it is not waiting (taken, done, not due yet is fine)."""
        maildir.check_key(key)
        target = f"{self._cur_s}{key}{CLAIM_SEP}{worker}"
        try:
            os.rename(self._new_s + key, target)
        except FileNotFoundError:
            return None
        try:
            with open(target, "rb") as file:
                record = file.read()
        except FileNotFoundError:
            return None  # recovered from under us by a worker that thought we were dead
        try:
            return self._decode(key, record)
        except (ValueError, TypeError, KeyError) as exc:  # bad JSON, unknown schema, missing fields
            raise UnreadableRecord(key, exc) from exc

    def _decode(self, key: str, record: bytes) -> Spooled:
        if self.plain:
            return decode_plain(key, record, self.group, str(self.path))
        return decode(key, record)

    def claim_waiting(self, worker: str, limit: int) -> list[Spooled]:
        """Claim up to ``limit`` of the oldest messages that are due (a drain)."""
        taken: list[Spooled] = []
        for key in self.waiting(due=True):
            if len(taken) >= limit:
                break
            got = self.claim(key, worker)
            if got is not None:
                taken.append(got)
        return taken

    def finish(self, key: str, worker: str) -> bool:
        """Done with it: the claim leaves cur/ for free/ (lamson.recycle; a plain queue's is deleted). False
        when it was no longer ours (recovered meanwhile)."""
        claimed = f"{self._cur_s}{key}{CLAIM_SEP}{worker}"
        if self._recycler is not None:
            return self._recycler.give(claimed, key)
        return bool(self._unlink(claimed))

    def release(self, spooled: Spooled, worker: str, *, delay: float = 0.0,
                envelope: Envelope | None = None) -> bool:
        """Put a claimed message back in new/, due ``delay`` seconds from now.

        With ``envelope`` the record is rewritten (durably, in tmp/ first) with
        it, e.g. one more attempt or fewer recipients left.
        """
        claimed = self._cur / f"{spooled.key}{CLAIM_SEP}{worker}"
        if envelope is not None and envelope != spooled.envelope:
            tmp = self.path / "tmp" / f"{spooled.key}{CLAIM_SEP}{worker}"
            try:
                if not claimed.exists():
                    return False
                maildir.write_file(tmp, encode(envelope, spooled.data), sync=self.sync)
                os.rename(tmp, claimed)
            except FileNotFoundError:
                return False
        due = time.time() + delay
        try:
            os.utime(claimed, (due, due))
            os.rename(claimed, self._new / spooled.key)
        except FileNotFoundError:
            return False
        return True

    def park(self, spooled: Spooled, worker: str, reason: str) -> str:
        """Move a claimed message to the parked Maildir as a parked record (lamson.parked); its key there."""
        key = write_parked(self.parked, spooled.envelope, reason, spooled.data, sync=self.sync)
        self.finish(spooled.key, worker)
        return key

    def park_unreadable(self, key: str, worker: str, reason: str) -> str | None:
        """Park a claimed record that cannot be decoded, byte for byte, with the reason (and no envelope)."""
        claimed = self._cur / f"{key}{CLAIM_SEP}{worker}"
        try:
            raw = claimed.read_bytes()
        except FileNotFoundError:
            return None
        kept = write_parked(self.parked, None, reason, raw, sync=self.sync)
        self._unlink(claimed)
        return kept

    def recover(self, is_dead: Callable[[Claim], bool]) -> list[str]:
        """Return dead workers' claims to new/, counting one more attempt; the keys recovered."""
        recovered = []
        for claim in self.claims():
            if not is_dead(claim):
                continue
            name = f"{claim.key}{CLAIM_SEP}{claim.worker}"
            try:
                record = (self._cur / name).read_bytes()
            except FileNotFoundError:
                continue
            if os.path.exists(self._new / claim.key):
                # A rewrite before an earlier recovery finished: the waiting copy wins.
                self._unlink(self._cur / name)
                continue
            try:
                spooled = self._decode(claim.key, record)
            except (ValueError, TypeError, KeyError):
                os.rename(self._cur / name, self._new / claim.key)  # whoever claims it next parks it
                recovered.append(claim.key)
                continue
            bumped = replace(spooled.envelope, attempts=spooled.envelope.attempts + 1)
            if self.release(spooled, claim.worker, envelope=bumped):
                recovered.append(claim.key)
        return recovered

    def cleanup(self) -> int:
        """Remove partial files whose writer is gone: old ones, and any whose process on this host died.

        A writer killed mid-write leaves its file in tmp/; its name says which
        pid on which host wrote it, so on that host it can go at once instead
        of after STALE_TMP (other hosts' files wait for the age limit).
        """
        removed = len(maildir.clean_tmp(self.path, self.STALE_TMP)) + recycle.trim(self.path)
        host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        for name in maildir.keys(self.path, "tmp"):
            match = _WRITER.match(name.split(CLAIM_SEP, 1)[0])
            if match and match.group(2) == host and not alive(int(match.group(1))) and CLAIM_SEP not in name:
                removed += self._unlink(self.path / "tmp" / name)
        return removed

    @staticmethod
    def _unlink(path: str | os.PathLike[str]) -> int:
        try:
            os.unlink(path)
            return 1
        except FileNotFoundError:
            return 0

    def __repr__(self) -> str:
        return f"MaildirSpool({str(self.path)!r})"


# Claim atomically: only a key still waiting moves to the claims hash.
_CLAIM = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  return redis.call('HMGET', KEYS[3], 'envelope', 'data')
end
return false
"""

# Release: only the current holder may put a claim back.
_RELEASE = """
local holder = redis.call('HGET', KEYS[2], ARGV[1])
if not holder or string.sub(holder, 1, string.len(ARGV[2])) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], 'envelope', ARGV[4]) end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""

# Finish: only the current holder removes the message.
_FINISH = """
local holder = redis.call('HGET', KEYS[2], ARGV[1])
if not holder or string.sub(holder, 1, string.len(ARGV[2])) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return 1
"""


class RedisSpool:
    """The same lifecycle in Redis: message hashes, a sorted set of waiting keys by due time, a claims hash."""

    def __init__(self, conn: redis.Redis, names: Names | None = None, *, group: str = "incoming",
                 parked: str | os.PathLike[str] = DEFAULTS["undeliverable_dir"]) -> None:
        self.conn = conn
        self.group = group
        self.parked = Path(parked)
        names = names or Names()
        self._waiting = names.key("spool", group, "new")
        self._claims = names.key("spool", group, "cur")
        self._prefix = names.key("spool", group, "msg") + ":"
        self._claim = conn.register_script(_CLAIM)
        self._release = conn.register_script(_RELEASE)
        self._finish = conn.register_script(_FINISH)

    def put(self, envelope: Envelope, data: bytes, *, sync: bool = True, delay: float = 0.0) -> str:
        key = maildir.new_key()
        pipe = self.conn.pipeline(transaction=True)
        pipe.hset(self._prefix + key, mapping={"envelope": envelope.to_json(), "data": data})
        pipe.zadd(self._waiting, {key: time.time() + delay})
        pipe.execute()
        return key

    def commit(self, keys: Iterable[str]) -> None:
        """Nothing to do: each put was one MULTI, as durable as the AOF."""

    def get(self, key: str) -> Spooled | None:
        env, data = self.conn.hmget(self._prefix + key, ["envelope", "data"])
        if env is None:
            return None
        return Spooled(key, Envelope.from_json(env), redis_data(data))

    def where(self, key: str) -> str | None:
        pipe = self.conn.pipeline(transaction=False)
        pipe.zscore(self._waiting, key)
        pipe.hexists(self._claims, key)
        waiting, claimed = pipe.execute()
        return "waiting" if waiting is not None else ("claimed" if claimed else None)

    def is_due(self, key: str) -> bool:
        score = self.conn.zscore(self._waiting, key)
        return score is not None and score <= time.time()

    def waiting(self, *, due: bool = False, older_than: float = 0.0) -> list[str]:
        limit: float | str = time.time() - max(older_than, 0.0) if (due or older_than > 0) else "+inf"
        return members(self.conn.zrangebyscore(self._waiting, "-inf", limit))

    def keys(self, older_than: float = 0.0) -> list[str]:
        return self.waiting(older_than=older_than)

    def claims(self) -> list[Claim]:
        found = []
        for key, value in self.conn.hgetall(self._claims).items():
            worker, _, since = text(value).rpartition("|")
            found.append(Claim(text(key), worker, float(since or 0)))
        return found

    def claim(self, key: str, worker: str) -> Spooled | None:
        got = self._claim(keys=[self._waiting, self._claims, self._prefix + key],
                          args=[key, f"{worker}|{time.time():.3f}"])
        if not got or got[0] is None:
            return None
        return _decode_claimed(key, got[0] + b"\n" + (got[1] or b""))

    def claim_waiting(self, worker: str, limit: int) -> list[Spooled]:
        taken = []
        for key in members(self.conn.zrangebyscore(self._waiting, "-inf", time.time(), start=0, num=limit)):
            got = self.claim(key, worker)
            if got is not None:
                taken.append(got)
        return taken

    def finish(self, key: str, worker: str) -> bool:
        return bool(self._finish(keys=[self._waiting, self._claims, self._prefix + key], args=[key, worker + "|"]))

    def release(self, spooled: Spooled, worker: str, *, delay: float = 0.0,
                envelope: Envelope | None = None) -> bool:
        record = envelope.to_json() if envelope is not None and envelope != spooled.envelope else b""
        return bool(self._release(keys=[self._waiting, self._claims, self._prefix + spooled.key],
                                  args=[spooled.key, worker + "|", time.time() + delay, record]))

    def park(self, spooled: Spooled, worker: str, reason: str) -> str:
        key = write_parked(self.parked, spooled.envelope, reason, spooled.data)
        self.finish(spooled.key, worker)
        return key

    def park_unreadable(self, key: str, worker: str, reason: str) -> str | None:
        env, data = self.conn.hmget(self._prefix + key, ["envelope", "data"])
        kept = write_parked(self.parked, None, reason, redis_data(env) + b"\n" + redis_data(data))
        self._finish(keys=[self._waiting, self._claims, self._prefix + key], args=[key, worker + "|"])
        return kept

    def recover(self, is_dead: Callable[[Claim], bool]) -> list[str]:
        recovered = []
        for claim in self.claims():
            if not is_dead(claim):
                continue
            try:
                spooled = self.get(claim.key)
            except (ValueError, TypeError, KeyError):
                self._release(keys=[self._waiting, self._claims, self._prefix + claim.key],
                              args=[claim.key, claim.worker + "|", time.time(), b""])
                recovered.append(claim.key)
                continue
            if spooled is None:
                self.conn.hdel(self._claims, claim.key)
                continue
            bumped = replace(spooled.envelope, attempts=spooled.envelope.attempts + 1)
            if self.release(spooled, claim.worker, envelope=bumped):
                recovered.append(claim.key)
        return recovered

    def cleanup(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"RedisSpool({self._waiting!r})"


def open_spool(settings: Any, conn: redis.Redis | None = None, group: str = "incoming") -> Spool:
    """The spool of one worker group (``incoming``, ``outgoing``, a deferred queue) as the settings say.

    Maildir: incoming mail in ``spool_dir``, replies in ``outbox_dir``, a
    deferred queue ``posts`` in ``spool_dir/.posts``. Parked incoming mail
    goes to ``undeliverable_dir``, parked replies to ``bounced_dir``.
    """
    from lamson.names import names_for
    from lamson.typed_settings import Settings

    typed = Settings.of(settings)
    parked = typed.bounced_dir if group == "outgoing" else typed.undeliverable_dir
    if typed.spool == "redis":
        if conn is None:
            raise ValueError("the Redis spool needs a Redis connection")
        return RedisSpool(conn, names_for(typed), group=group, parked=parked)
    if group == "outgoing":
        path = Path(typed.outbox_dir)
    elif group == "incoming":
        path = Path(typed.spool_dir)
    else:
        path = Path(typed.spool_dir) / f".{group}"
    return MaildirSpool(path, group=group, parked=parked)
