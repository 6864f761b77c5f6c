"""Where conversation state lives: per (state key, sender) → state name.

The state key is the handler module's name unless the module has a
``@state_key_generator``; the sender is the bare, lowercased envelope
address. An unknown conversation is in ``START``, and setting ``START``
deletes the record, so storage only holds conversations in progress.

``MemoryStorage`` is for one process (unit tests, ``config/testing.py``);
``RedisStorage`` is what router workers use, so that every process and host
sees the same conversations.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Protocol

import redis

START = "START"


class StateStorage(Protocol):
    """The interface both storages implement."""

    def get(self, key: str, sender: str) -> str: ...

    def set(self, key: str, sender: str, state: str) -> None: ...

    def clear(self) -> None: ...

    def conversations(self) -> Iterator[tuple[str, str, str]]: ...


class MemoryStorage:
    """Conversation state in a dict, guarded for threads."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, key: str, sender: str) -> str:
        with self._lock:
            return self.states.get((key, sender), START)

    def set(self, key: str, sender: str, state: str) -> None:
        with self._lock:
            if state == START:
                self.states.pop((key, sender), None)
            else:
                self.states[(key, sender)] = state

    def clear(self) -> None:
        with self._lock:
            self.states.clear()

    def conversations(self) -> Iterator[tuple[str, str, str]]:
        """``(key, sender, state)`` for every conversation not in START."""
        with self._lock:
            items = list(self.states.items())
        for (key, sender), state in items:
            yield key, sender, state

    def __repr__(self) -> str:
        return f"MemoryStorage({len(self.states)} conversations)"


class RedisStorage:
    """Conversation state in one Redis hash, ``{prefix}states``.

    A field is the JSON array ``[key, sender]`` (unambiguous whatever
    characters a custom state key holds), its value the state name. One
    hash keeps ``clear()`` a single atomic DEL and listing a plain HSCAN.
    """

    def __init__(self, conn: redis.Redis, prefix: str = "lamson:") -> None:
        self.conn = conn
        self.prefix = prefix
        self.hash = prefix + "states"

    @staticmethod
    def field(key: str, sender: str) -> str:
        return json.dumps([key, sender], ensure_ascii=False, separators=(",", ":"))

    def get(self, key: str, sender: str) -> str:
        value = self.conn.hget(self.hash, self.field(key, sender))
        if value is None:
            return START
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def set(self, key: str, sender: str, state: str) -> None:
        if state == START:
            self.conn.hdel(self.hash, self.field(key, sender))
        else:
            self.conn.hset(self.hash, self.field(key, sender), state)

    def clear(self) -> None:
        self.conn.delete(self.hash)

    def conversations(self) -> Iterator[tuple[str, str, str]]:
        """``(key, sender, state)`` for every conversation not in START."""
        for raw_field, raw_state in self.conn.hscan_iter(self.hash):
            key, sender = json.loads(raw_field)
            state = raw_state.decode("utf-8") if isinstance(raw_state, bytes) else str(raw_state)
            yield key, sender, state

    def __repr__(self) -> str:
        return f"RedisStorage({self.hash!r})"
