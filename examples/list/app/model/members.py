"""Who is on each list: the member store, in Redis for the running lists and in memory for tests.

The handlers only ever talk to a :class:`Members` object (``settings.members``,
assigned by config/boot.py or config/testing.py), so the same handler code runs
against Redis in the router workers and against a dict in the handler tests,
with no Redis server at all.

Per list, under the application's namespace (``NAMESPACE:list:LIST:...``):

* ``members``: a set of the bare, lowercased addresses that receive posts;
* ``disabled``: a set of addresses taken off after too many hard bounces (they
  stay known, so the notice can say why; subscribing again clears it);
* ``bounces``: a hash ``ADDRESS:soft`` / ``ADDRESS:hard`` → count;
* ``refused:ADDRESS``: a key with a time to live, set when a non-member was
  told they cannot post, so they are told once per ``refusal_interval``.

Membership is the only truth about a member: there is no conversation state
beside it that could disagree (see app/handlers/mailinglist.py).
"""

from __future__ import annotations

import time
from typing import Any

from lamson import context
from lamson.confirm import normal_address
from lamson.names import Names, names_for


class Members:
    """The operations the list handlers need; subclasses keep the data somewhere."""

    def add(self, name: str, address: str) -> None:
        """Subscribe ``address`` to list ``name`` (again): active, with its bounce counts cleared."""
        raise NotImplementedError

    def remove(self, name: str, address: str) -> bool:
        """Take ``address`` off list ``name`` altogether; True if it was active or disabled there."""
        raise NotImplementedError

    def is_member(self, name: str, address: str) -> bool:
        """True when ``address`` is an active member (receives posts, may post)."""
        raise NotImplementedError

    def is_disabled(self, name: str, address: str) -> bool:
        """True when ``address`` was disabled by bounces and has not subscribed again."""
        raise NotImplementedError

    def members(self, name: str) -> list[str]:
        """The active members of list ``name``, sorted (the order copies are queued in)."""
        raise NotImplementedError

    def bounced(self, name: str, address: str, kind: str) -> int:
        """Count one ``kind`` ("soft" or "hard") bounce of ``address`` on list ``name``; the new count."""
        raise NotImplementedError

    def bounces(self, name: str, address: str) -> dict[str, int]:
        """``{"soft": n, "hard": m}`` for ``address`` on list ``name``."""
        raise NotImplementedError

    def disable(self, name: str, address: str) -> bool:
        """Move an active member to the disabled set; True if it was active."""
        raise NotImplementedError

    def first_refusal(self, name: str, address: str, interval: int) -> bool:
        """True when ``address`` was not told "members only" on list ``name`` in the last ``interval`` s."""
        raise NotImplementedError


def _kind(kind: str) -> str:
    if kind not in ("soft", "hard"):
        raise ValueError(f"bounce kind must be 'soft' or 'hard', not {kind!r}")
    return kind


class MemoryMembers(Members):
    """Members in dictionaries of this process: for handler tests (no Redis), never for the pipeline."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.active: dict[str, set[str]] = {}
        self.off: dict[str, set[str]] = {}
        self.counts: dict[tuple[str, str, str], int] = {}
        self.refusals: dict[tuple[str, str], float] = {}
        self.clock = clock

    def clear(self) -> None:
        """Forget everything (between tests)."""
        self.active.clear()
        self.off.clear()
        self.counts.clear()
        self.refusals.clear()

    def add(self, name: str, address: str) -> None:
        address = normal_address(address)
        self.active.setdefault(name, set()).add(address)
        self.off.get(name, set()).discard(address)
        for kind in ("soft", "hard"):
            self.counts.pop((name, address, kind), None)

    def remove(self, name: str, address: str) -> bool:
        address = normal_address(address)
        found = address in self.active.get(name, set()) or address in self.off.get(name, set())
        self.active.get(name, set()).discard(address)
        self.off.get(name, set()).discard(address)
        return found

    def is_member(self, name: str, address: str) -> bool:
        return normal_address(address) in self.active.get(name, set())

    def is_disabled(self, name: str, address: str) -> bool:
        return normal_address(address) in self.off.get(name, set())

    def members(self, name: str) -> list[str]:
        return sorted(self.active.get(name, set()))

    def bounced(self, name: str, address: str, kind: str) -> int:
        key = (name, normal_address(address), _kind(kind))
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]

    def bounces(self, name: str, address: str) -> dict[str, int]:
        address = normal_address(address)
        return {kind: self.counts.get((name, address, kind), 0) for kind in ("soft", "hard")}

    def disable(self, name: str, address: str) -> bool:
        address = normal_address(address)
        if address not in self.active.get(name, set()):
            return False
        self.active[name].discard(address)
        self.off.setdefault(name, set()).add(address)
        return True

    def first_refusal(self, name: str, address: str, interval: int) -> bool:
        key = (name, normal_address(address))
        now = self.clock()
        last = self.refusals.get(key)
        if last is not None and now - last < interval:
            return False
        self.refusals[key] = now
        return True


class RedisMembers(Members):
    """Members in the application's Redis, shared by every router worker on every host.

    Redis and the namespace are those of the worker's context (lamson.context),
    else ``conn=``/``names=``, else the settings' redis_url and namespace —
    looked up at each call, so a module-level instance works in any process.
    """

    def __init__(self, conn: Any = None, names: Names | None = None) -> None:
        self._conn = conn
        self._names = names

    def _redis(self) -> tuple[Any, Names]:
        current = context.get()
        conn = self._conn or (current.conn if current is not None else None)
        names = self._names or (current.names if current is not None else None)
        if conn is None or names is None:
            from lamson.connection import connect

            settings = context.app_settings()
            conn = conn or connect(settings.redis_url)
            names = names or names_for(settings)
            self._conn, self._names = conn, names
        return conn, names

    def _key(self, name: str, *parts: str) -> tuple[Any, str]:
        conn, names = self._redis()
        return conn, names.key("list", name, *parts)

    def add(self, name: str, address: str) -> None:
        address = normal_address(address)
        conn, _ = self._redis()
        _, active = self._key(name, "members")
        _, off = self._key(name, "disabled")
        _, counts = self._key(name, "bounces")
        with conn.pipeline(transaction=True) as pipe:
            pipe.sadd(active, address)
            pipe.srem(off, address)
            pipe.hdel(counts, f"{address}:soft", f"{address}:hard")
            pipe.execute()

    def remove(self, name: str, address: str) -> bool:
        address = normal_address(address)
        conn, _ = self._redis()
        _, active = self._key(name, "members")
        _, off = self._key(name, "disabled")
        _, counts = self._key(name, "bounces")
        with conn.pipeline(transaction=True) as pipe:
            pipe.srem(active, address)
            pipe.srem(off, address)
            pipe.hdel(counts, f"{address}:soft", f"{address}:hard")
            was_active, was_off, _ = pipe.execute()
        return bool(was_active or was_off)

    def is_member(self, name: str, address: str) -> bool:
        conn, key = self._key(name, "members")
        return bool(conn.sismember(key, normal_address(address)))

    def is_disabled(self, name: str, address: str) -> bool:
        conn, key = self._key(name, "disabled")
        return bool(conn.sismember(key, normal_address(address)))

    def members(self, name: str) -> list[str]:
        conn, key = self._key(name, "members")
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in conn.smembers(key))

    def bounced(self, name: str, address: str, kind: str) -> int:
        conn, key = self._key(name, "bounces")
        return int(conn.hincrby(key, f"{normal_address(address)}:{_kind(kind)}", 1))

    def bounces(self, name: str, address: str) -> dict[str, int]:
        address = normal_address(address)
        conn, key = self._key(name, "bounces")
        soft, hard = conn.hmget(key, [f"{address}:soft", f"{address}:hard"])
        return {"soft": int(soft or 0), "hard": int(hard or 0)}

    def disable(self, name: str, address: str) -> bool:
        conn, active = self._key(name, "members")
        _, off = self._key(name, "disabled")
        # SMOVE is atomic: two workers handling two bounces cannot both disable (and notify) one member.
        return bool(conn.smove(active, off, normal_address(address)))

    def first_refusal(self, name: str, address: str, interval: int) -> bool:
        conn, key = self._key(name, "refused", normal_address(address))
        return bool(conn.set(key, "1", nx=True, ex=max(1, int(interval))))
