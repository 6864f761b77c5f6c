"""Where token counts live: Redis for every worker at once, or memory for tests.

Redis layout, under the application's namespace (:mod:`lamson.names`), for
a filter whose storage name is ``STORAGE`` (``:`` and ``%`` escaped)::

    NS:spam:STORAGE:s     hash  token -> number of spam messages containing it
    NS:spam:STORAGE:h     hash  token -> number of ham messages containing it
    NS:spam:STORAGE:meta  hash  nspam, nham (messages trained)
    NS:spam:STORAGE:learnt hash digest of a message -> "spam" / "ham": what
                                ``lamson spam -learn-from`` taught it (lamson.spam.learning)

* Scoring reads the counts of all of one message's tokens and the totals in
  one round trip: a Lua script doing the HMGETs (of the totals, the spam
  counts and the ham counts) atomically, so the three agree with each other
  even while others train. It takes the tokens as one newline-joined
  argument and returns each hash's counts as one comma-joined string: the
  same reads as a MULTI/EXEC pipeline of HMGETs, but redis-py (without the
  optional hiredis parser) spends about a microsecond per argument packed and
  per reply item parsed, which for ~300 tokens twice was half the time of
  scoring a message; two strings parse in one go.
* Training one message is one MULTI/EXEC pipeline of HINCRBYs: atomic, so
  concurrent router workers never see (or leave) a half-trained message.
* Untraining runs a Lua script: it must not take a count below zero (a
  message untrained twice, or never trained), and that is a read-then-write
  per token. A WATCH/MULTI loop would do the same, but would retry every
  time any worker trains a common token at the same moment (all messages
  share tokens), while a script runs atomically in Redis in one round trip
  with no retries. Counts that reach zero are removed (HDEL), keeping the
  hashes to tokens that exist.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from lamson.names import Names


@dataclass(frozen=True)
class Counts:
    """What scoring needs: the totals and, per token (in the order asked), its spam and ham counts."""

    nspam: int
    nham: int
    spam: list[int]
    ham: list[int]


@dataclass(frozen=True)
class Stats:
    """The size of a trained filter."""

    nspam: int
    nham: int
    spam_tokens: int
    ham_tokens: int
    tokens: int


class TokenStore(Protocol):
    """The four operations the filter needs from its storage."""

    def counts(self, tokens: Sequence[str]) -> Counts: ...

    def train(self, tokens: Sequence[str], is_spam: bool) -> None: ...

    def untrain(self, tokens: Sequence[str], is_spam: bool) -> None: ...

    def stats(self) -> Stats: ...

    def clear(self) -> None: ...


def _key_part(text: str) -> str:
    return text.replace("%", "%25").replace(":", "%3A")


def _numbers(joined: bytes) -> list[int]:
    return [int(value) if value else 0 for value in joined.split(b",")]


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


# Decrement each token's field (KEYS[1]) by one, never below zero, deleting it at zero; then the
# message total field ARGV[1] of the meta hash (KEYS[2]) the same way. Returns the new total.
_UNTRAIN = """
for i = 2, #ARGV do
  local n = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if n <= 1 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HINCRBY', KEYS[1], ARGV[i], -1)
  end
end
local total = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if total > 0 then
  total = redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
end
return total
"""


# KEYS: meta, spam, ham; ARGV[1]: the tokens joined by newlines. Returns
# {nspam, nham, "spam counts", "ham counts"}, counts comma-joined in token order ("" for none).
_COUNTS = """
local tokens = {}
for token in string.gmatch(ARGV[1], "[^\\n]+") do tokens[#tokens + 1] = token end
local meta = redis.call('HMGET', KEYS[1], 'nspam', 'nham')
local out = {meta[1] or '0', meta[2] or '0', '', ''}
for k = 2, 3 do
  local parts = {}
  for i = 1, #tokens, 500 do
    local values = redis.call('HMGET', KEYS[k], unpack(tokens, i, math.min(i + 499, #tokens)))
    for j = 1, #values do parts[#parts + 1] = values[j] or '' end
  end
  out[k + 1] = table.concat(parts, ',')
end
return out
"""


class RedisStore:
    """Token counts in Redis, shared by every process of the application (see the module doc)."""

    def __init__(self, conn: redis.Redis, names: Names, storage: str) -> None:
        self.conn = conn
        self.names = names
        self.storage = storage
        base = names.key("spam", _key_part(storage))
        self.spam_key = f"{base}:s"
        self.ham_key = f"{base}:h"
        self.meta_key = f"{base}:meta"
        self.learnt_key = f"{base}:learnt"
        self._untrain = conn.register_script(_UNTRAIN)
        self._counts = conn.register_script(_COUNTS)

    def counts(self, tokens: Sequence[str]) -> Counts:
        """Totals and per-token counts in one atomic round trip (tokens never contain a newline)."""
        joined = "\n".join(tokens).encode("utf-8", "surrogatepass")
        nspam, nham, spam, ham = self._counts(keys=[self.meta_key, self.spam_key, self.ham_key], args=[joined])
        if not tokens:
            return Counts(int(nspam), int(nham), [], [])
        return Counts(int(nspam), int(nham), _numbers(spam), _numbers(ham))

    def train(self, tokens: Sequence[str], is_spam: bool) -> None:
        key = self.spam_key if is_spam else self.ham_key
        with self.conn.pipeline(transaction=True) as pipe:
            for token in tokens:
                pipe.hincrby(key, token, 1)
            pipe.hincrby(self.meta_key, "nspam" if is_spam else "nham", 1)
            pipe.execute()

    def untrain(self, tokens: Sequence[str], is_spam: bool) -> None:
        key = self.spam_key if is_spam else self.ham_key
        self._untrain(keys=[key, self.meta_key], args=["nspam" if is_spam else "nham", *tokens])

    def stats(self) -> Stats:
        with self.conn.pipeline(transaction=True) as pipe:
            pipe.hmget(self.meta_key, ["nspam", "nham"])
            pipe.hlen(self.spam_key)
            pipe.hlen(self.ham_key)
            (nspam, nham), spam_tokens, ham_tokens = pipe.execute()
        tokens = self._distinct_tokens(int(spam_tokens), int(ham_tokens))
        return Stats(_int(nspam), _int(nham), int(spam_tokens), int(ham_tokens), tokens)

    def _distinct_tokens(self, spam_tokens: int, ham_tokens: int) -> int:
        """Tokens in either hash: the larger hash's size plus the smaller hash's tokens missing from it."""
        small, large = (self.spam_key, self.ham_key) if spam_tokens <= ham_tokens else (self.ham_key, self.spam_key)
        extra = 0
        cursor = 0
        while True:
            cursor, fields = self.conn.hscan(small, cursor, count=1000)
            names = list(fields)
            if names:
                with self.conn.pipeline(transaction=False) as pipe:
                    for name in names:
                        pipe.hexists(large, name)
                    extra += sum(1 for present in pipe.execute() if not present)
            if cursor == 0:
                break
        return max(spam_tokens, ham_tokens) + extra

    def clear(self) -> None:
        self.conn.delete(self.spam_key, self.ham_key, self.meta_key, self.learnt_key)


class MemoryStore:
    """Token counts in this process's memory: for tests of applications run without Redis.

    :meth:`named` returns one store per storage name for the whole process, so
    a test that trains ``Filter("run/spamdb")`` trains the filter a handler's
    ``@spam_filter("run/spamdb", ...)`` uses, as Redis would make them share.
    """

    _shared: dict[str, MemoryStore] = {}
    _shared_lock = threading.Lock()

    def __init__(self, storage: str = "") -> None:
        self.storage = storage
        self._spam: dict[str, int] = {}
        self._ham: dict[str, int] = {}
        self._totals = {"nspam": 0, "nham": 0}
        #: digest -> "spam" / "ham": what ``learn_from`` taught this store (as the Redis ``learnt`` hash).
        self.learnt: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def named(cls, storage: str) -> MemoryStore:
        """The process-wide store for ``storage`` (created on first use)."""
        with cls._shared_lock:
            if storage not in cls._shared:
                cls._shared[storage] = cls(storage)
            return cls._shared[storage]

    @classmethod
    def forget_all(cls) -> None:
        """Drop every process-wide store (a test's clean slate)."""
        with cls._shared_lock:
            cls._shared.clear()

    def counts(self, tokens: Sequence[str]) -> Counts:
        with self._lock:
            return Counts(self._totals["nspam"], self._totals["nham"],
                          [self._spam.get(t, 0) for t in tokens], [self._ham.get(t, 0) for t in tokens])

    def train(self, tokens: Sequence[str], is_spam: bool) -> None:
        table = self._spam if is_spam else self._ham
        with self._lock:
            for token in tokens:
                table[token] = table.get(token, 0) + 1
            self._totals["nspam" if is_spam else "nham"] += 1

    def untrain(self, tokens: Sequence[str], is_spam: bool) -> None:
        table = self._spam if is_spam else self._ham
        total = "nspam" if is_spam else "nham"
        with self._lock:
            for token in tokens:
                if table.get(token, 0) <= 1:
                    table.pop(token, None)
                else:
                    table[token] -= 1
            self._totals[total] = max(self._totals[total] - 1, 0)

    def stats(self) -> Stats:
        with self._lock:
            return Stats(self._totals["nspam"], self._totals["nham"], len(self._spam), len(self._ham),
                         len(self._spam.keys() | self._ham.keys()))

    def clear(self) -> None:
        with self._lock:
            self._spam.clear()
            self._ham.clear()
            self.learnt.clear()
            self._totals.update(nspam=0, nham=0)
