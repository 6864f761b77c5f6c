"""Where conversation state lives: per (state key, sender) → state name.

The state key is the handler module's name unless the module has a
``@state_key_generator``; the sender is the bare, lowercased envelope
address. An unknown conversation is in ``START``, and setting ``START``
deletes the record, so storage only holds conversations in progress.

``MemoryStorage`` is for one process (unit tests, ``config/testing.py``);
``RedisStorage`` is what router workers use, so that every process and host
sees the same conversations. ``ShelveStorage`` is Lamson 1.x's file-backed
store, kept for applications that set it in their boot; it is safe across
the router worker processes of one host (a file lock), not across hosts.
"""

from __future__ import annotations

import fcntl
import json
import os
import shelve
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import redis

START = "START"


class StateStorage:
    """Base class of conversation stores, as Lamson 1.x's ``lamson.routing.StateStorage``.

    An application may subclass it to keep state elsewhere (a database) and
    assign an instance to ``Router.STATE_STORE`` in its boot. ``get`` returns
    ``"START"`` for an unknown conversation; ``set`` with ``"START"`` should
    forget the conversation, so storage only holds conversations in progress.
    """

    def get(self, key: str, sender: str) -> str:
        """The state of ``sender``'s conversation under ``key`` (``"START"`` if none)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get(key, sender)")

    def set(self, key: str, sender: str, state: str) -> None:
        """Record the next state of a conversation."""
        raise NotImplementedError(f"{type(self).__name__} must implement set(key, sender, state)")

    def clear(self) -> None:
        """Forget every conversation (``Router.clear_states``, tests)."""
        raise NotImplementedError(f"{type(self).__name__} must implement clear()")

    def conversations(self) -> Iterator[tuple[str, str, str]]:
        """``(key, sender, state)`` of every conversation not in START, if the store can list them.

        Optional: a 1.x store that cannot list simply yields nothing.
        """
        return iter(())


class MemoryStorage(StateStorage):
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


class ShelveStorage(StateStorage):
    """Conversation state in a :mod:`shelve` file, as Lamson 1.x's ``ShelveStorage(database_path)``.

    Each operation opens the file under an exclusive ``flock`` on
    ``database_path + ".lock"`` (plus a thread lock) and closes it again, so
    the several router worker processes of one host read each other's
    writes instead of a stale cached copy. It is slower than Redis and not
    shared between hosts: use it only when an application asks for it.
    """

    def __init__(self, database_path: str | os.PathLike[str]) -> None:
        self.database_path = os.fspath(database_path)
        self.lock_path = self.database_path + ".lock"
        self._lock = threading.RLock()

    @staticmethod
    def field(key: str, sender: str) -> str:
        """The shelve key of a conversation: unambiguous whatever the state key holds."""
        return json.dumps([key, sender], ensure_ascii=False, separators=(",", ":"))

    @contextmanager
    def _open(self, flag: Literal["c", "n"] = "c") -> Iterator[shelve.Shelf[str]]:
        with self._lock, open(self.lock_path, "a+b") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                with shelve.open(self.database_path, flag=flag) as db:
                    yield db
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    def get(self, key: str, sender: str) -> str:
        with self._open() as db:
            return str(db.get(self.field(key, sender), START))

    def set(self, key: str, sender: str, state: str) -> None:
        with self._open() as db:
            name = self.field(key, sender)
            if state == START:
                db.pop(name, None)
            else:
                db[name] = state

    def clear(self) -> None:
        with self._open(flag="n"):
            pass  # "n": always a new, empty database

    def conversations(self) -> Iterator[tuple[str, str, str]]:
        """``(key, sender, state)`` for every conversation not in START."""
        with self._open() as db:
            items = [(json.loads(name), str(state)) for name, state in db.items()]
        for (key, sender), state in items:
            yield key, sender, state

    def __repr__(self) -> str:
        return f"ShelveStorage({self.database_path!r})"


class RedisStorage(StateStorage):
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
