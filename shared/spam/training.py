"""Training from files (``lamson spam -train-*``): streamed, and all or nothing.

Two faults of the first ``lamson spam`` (issue 21, finding 10): a 2 GB file
took 2.1 GB of memory, and a run interrupted halfway kept the messages it had
trained so far, so running it again counted them twice.

* **Bounded memory.** The tokenizer reads at most ``max_message_bytes`` of a
  message (lamson.spam.config), so that is all :func:`read_messages` keeps of
  one: a message file is read up to it, an mbox is read line by line and the
  rest of a long message is skipped. Memory is one message's prefix and one
  batch of token lists, whatever the size of the files.
* **All or nothing.** A run's counts go first to *staging* hashes of its own
  in Redis (``NS:spam:STORAGE:run:ID:...``, expiring an hour after the last
  batch), and are added to the filter's hashes at the end by one Lua script,
  which Redis runs atomically. A run that is killed leaves the filter as it
  was (its staging expires); one that is interrupted (Ctrl-C, an error)
  deletes its staging. Trainings are applied before untrainings, the order in
  which ``lamson spam`` runs its actions, and an untraining never takes a
  count below zero, as :meth:`lamson.spam.store.RedisStore.untrain` does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from lamson.spam.store import RedisStore, TokenStore

#: Messages whose tokens are sent to Redis in one round trip.
BATCH = 50

#: Seconds a killed run's staging hashes outlive its last batch.
STAGING_TTL = 3600

#: What each of ``lamson spam``'s actions adds to: (trained or untrained, spam or ham).
ACTIONS: dict[str, tuple[bool, bool]] = {
    "train-spam": (True, True), "train-ham": (True, False),
    "untrain-spam": (False, True), "untrain-ham": (False, False),
}

# KEYS: spam, ham, meta, then the staging: +spam, +ham, +meta, -spam, -ham, -meta; then the staged
# digests and the store's learnt hash (lamson.spam.learning: what -learn-from taught the filter).
_COMMIT = """
local function add(dst, src)
  local kv = redis.call('HGETALL', src)
  for i = 1, #kv, 2 do redis.call('HINCRBY', dst, kv[i], kv[i + 1]) end
end
local function sub(dst, src, keep_zero)
  local kv = redis.call('HGETALL', src)
  for i = 1, #kv, 2 do
    local n = tonumber(redis.call('HGET', dst, kv[i]) or '0') - tonumber(kv[i + 1])
    if n > 0 then redis.call('HSET', dst, kv[i], n)
    elseif keep_zero then redis.call('HSET', dst, kv[i], 0)
    else redis.call('HDEL', dst, kv[i]) end
  end
end
add(KEYS[1], KEYS[4]); add(KEYS[2], KEYS[5]); add(KEYS[3], KEYS[6])
sub(KEYS[1], KEYS[7], false); sub(KEYS[2], KEYS[8], false); sub(KEYS[3], KEYS[9], true)
local kv = redis.call('HGETALL', KEYS[10])
for i = 1, #kv, 2 do redis.call('HSET', KEYS[11], kv[i], kv[i + 1]) end
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10])
return 1
"""


def _read_prefix(path: Path, limit: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(limit)


def mbox_messages(handle: BinaryIO, limit: int) -> Iterator[bytes]:
    """The messages of an mbox, each cut to its first ``limit`` bytes, reading line by line.

    Split as :class:`mailbox.mbox` splits them (what ``lamson spam`` read before): a
    message starts at each ``From `` line, which is not part of it, nor is the empty
    line just before the next one (or at the end of the file).
    """
    kept: list[bytes] = []
    size = 0
    started = False
    held = False  # an empty line held back: the separator, unless more of the message follows

    def keep(line: bytes) -> None:
        nonlocal size
        if size < limit:
            kept.append(line[: limit - size])
            size += len(kept[-1])

    for line in handle:
        if line.startswith(b"From "):
            if started:
                yield b"".join(kept)
            kept, size, started, held = [], 0, True, False
            continue
        if not started:
            continue
        if held:
            keep(b"\n")
        held = line == b"\n"
        if not held:
            keep(line)
    if started:
        yield b"".join(kept)


def read_messages(path: str | Path, limit: int) -> Iterator[bytes]:
    """The messages of a Maildir, a folder of message files or an mbox file, each cut to ``limit``
    bytes (the tokenizer's ``max_message_bytes``: it reads no more); FileNotFoundError if none."""
    where = Path(path)
    if where.is_dir():
        folders = [where / "cur", where / "new"] if (where / "cur").is_dir() or (where / "new").is_dir() else [where]
        for folder in folders:
            if not folder.is_dir():
                continue
            for item in sorted(folder.iterdir()):
                if item.is_file() and not item.name.startswith("."):
                    yield _read_prefix(item, limit)
    elif where.is_file():
        with where.open("rb") as handle:
            yield from mbox_messages(handle, limit)
    else:
        raise FileNotFoundError(f"no Maildir, folder or mbox file at {path}")


class TrainingRun:
    """A run's counts, staged, applied at :meth:`commit` in one atomic step, or dropped by :meth:`abort`.

    Use as a context manager: leaving the block by an exception aborts.
    """

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self.pending: list[tuple[Sequence[str], bool, bool]] = []
        #: Digests marked since the last flush (digest -> kind); for a store in memory, the whole run's.
        self.digests: dict[str, str] = {}
        self.staged = False
        self.id = uuid.uuid4().hex
        if isinstance(store, RedisStore):
            base = store.meta_key.rsplit(":", 1)[0]
            self.keys = [store.spam_key, store.ham_key, store.meta_key,
                         *(f"{base}:run:{self.id}:{part}" for part in ("ts", "th", "tm", "us", "uh", "um", "dg")),
                         store.learnt_key]
            self.staging = self.keys[3:10]
            self._commit = store.conn.register_script(_COMMIT)
        else:
            self.keys = []
            self.staging = []
            self._local: dict[tuple[bool, bool], list[Sequence[str]]] = {}

    def known(self, digest: str) -> tuple[str | None, str | None]:
        """What the filter learnt the message of ``digest`` as before this run, and what this run
        learns it as: ``(kind or None, kind or None)`` (lamson.spam.learning)."""
        now = self.digests.get(digest)
        if not self.keys:
            learnt: dict[str, str] = getattr(self.store, "learnt", {})
            return learnt.get(digest), now
        store: Any = self.store
        with store.conn.pipeline(transaction=False) as pipe:
            pipe.hget(store.learnt_key, digest)
            pipe.hget(self.staging[-1], digest)
            before, staged = pipe.execute()
        return _kind(before), now or _kind(staged)

    def mark(self, digest: str, kind: str) -> None:
        """Record, when the run commits, that the message of ``digest`` was learnt as ``kind``."""
        self.digests[digest] = kind
        if self.keys and len(self.digests) >= BATCH:
            self.flush()

    def add(self, action: str, tokens: Sequence[str]) -> None:
        """Count one message's tokens for ``action`` (a key of :data:`ACTIONS`)."""
        trained, is_spam = ACTIONS[action]
        self.pending.append((tokens, trained, is_spam))
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Send what is pending to the staging hashes (or keep it, for a store in memory)."""
        batch, self.pending = self.pending, []
        if not batch and not (self.keys and self.digests):
            return
        if not self.keys:
            for tokens, trained, is_spam in batch:
                self._local.setdefault((trained, is_spam), []).append(tokens)
            return
        store: Any = self.store
        digests, self.digests = self.digests, {}
        with store.conn.pipeline(transaction=False) as pipe:
            for tokens, trained, is_spam in batch:
                offset = 3 if trained else 6
                key = self.keys[offset + (0 if is_spam else 1)]
                for token in tokens:
                    pipe.hincrby(key, token, 1)
                pipe.hincrby(self.keys[offset + 2], "nspam" if is_spam else "nham", 1)
            if digests:
                pipe.hset(self.staging[-1], mapping=digests)
            for key in self.staging:
                pipe.expire(key, STAGING_TTL)
            self.staged = True  # before it runs: interrupted after Redis took it, abort must still delete it
            pipe.execute()

    def commit(self) -> None:
        """Apply the whole run to the filter at once."""
        self.flush()
        if self.keys:
            if self.staged:
                self._commit(keys=self.keys)
            return
        memory = self.store
        for trained in (True, False):  # trainings first, as the Redis script applies them
            for is_spam in (True, False):
                for tokens in self._local.pop((trained, is_spam), []):
                    (memory.train if trained else memory.untrain)(tokens, is_spam)
        learnt = getattr(memory, "learnt", None)
        if isinstance(learnt, dict):
            learnt.update(self.digests)
        self.digests = {}

    def abort(self) -> None:
        """Drop the run: the filter stays as it was before it."""
        self.pending = []
        self.digests = {}
        if self.keys and self.staged:
            store: Any = self.store
            store.conn.delete(*self.staging)
        elif not self.keys:
            self._local.clear()

    def __enter__(self) -> TrainingRun:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is None:
            self.commit()
        else:
            try:
                self.abort()
            except Exception:  # noqa: BLE001 - the staging expires by itself; the first error matters
                pass



def _kind(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
