"""Confirmation of sign-ups by mail: Lamson 1.x's ``lamson.confirm``.

The flow every mailing list and sign-up uses, as in the guide:

    CONFIRM = ConfirmationEngine("run/pending", ConfirmationStorage())

    @route("(list_name)-subscribe@(host)")
    def START(message, list_name=None, host=None):
        CONFIRM.send(relay, list_name, message, "confirm.txt", locals())
        return CONFIRMING

    @route("(list_name)-confirm-(id_number)@(host)")
    def CONFIRMING(message, list_name=None, id_number=None, host=None):
        original = CONFIRM.verify(list_name, message.route_from, id_number)
        if original: ...  # subscribe; the first message is in `original`

The message that started it waits in a Maildir queue (``pending_queue``);
the expected secret lives in a :class:`ConfirmationStorage`, by default in
the application's Redis under its namespace (``NAMESPACE:confirm:...``), so
every router worker on every host sees the same pending confirmations.
Secrets come from :mod:`secrets` and are compared in constant time; a secret
works once.

A confirmation request goes to an address that has proven nothing: anyone can
name a victim as the sender of a sign-up, once per address of ours and per
message. So the engine caps such *unsolicited* mail per target address and
hour (``unsolicited_per_hour``, counted in Redis under the application's
namespace, shared by every worker: :meth:`ConfirmationEngine.may_send`), and
keeps at most ``max_pending`` confirmations per target, dropping the oldest,
so forged sign-ups from ever new addresses cannot grow Redis or the pending
Maildir without bound (docs/design.md, "Application state in Redis";
docs/security.md, "Unsolicited mail").
"""

from __future__ import annotations

import email.utils
import hmac
import logging
import secrets
import time
import weakref
from collections.abc import Iterator, MutableMapping
from typing import Any

import redis

from lamson import context, maildir, view
from lamson.names import DEFAULT_NAMESPACE, Names, names_for
from lamson.queue import Queue

log = logging.getLogger(__name__)

__all__ = ["ConfirmationEngine", "ConfirmationStorage"]

#: How long an unanswered confirmation stays valid in Redis (seconds): a week.
DEFAULT_EXPIRES = 7 * 24 * 3600

#: How many confirmations may wait per target (a list, a sign-up form) before the oldest is dropped.
DEFAULT_MAX_PENDING = 10_000

#: The window of the unsolicited-mail cap (seconds): the count restarts every clock hour.
UNSOLICITED_WINDOW = 3600


def normal_address(address: Any) -> str:
    """The bare, lowercased address (``"Joe <Joe@X.com>"`` → ``"joe@x.com"``), so case never matters."""
    text = str(address or "").strip()
    if "<" in text:
        text = email.utils.parseaddr(text)[1] or text
    return text.strip().lower()


def _key_part(text: str) -> str:
    """A key component with ``%`` and ``:`` escaped, so ``("a:b", "c")`` and ``("a", "b:c")`` differ."""
    return text.replace("%", "%25").replace(":", "%3A")


def _unkey_part(text: str) -> str:
    """The inverse of :func:`_key_part`."""
    return text.replace("%3A", ":").replace("%25", "%")


class ConfirmationStorage:
    """Where pending confirmations are kept: ``(target, sender) → (secret, pending message id)``.

    By default Redis: the connection and namespace of the worker's context
    (:func:`lamson.context.get`), else ``conn=``/``names=`` given here, else
    the application's settings (:func:`lamson.settings.load`). Looked up at
    each call, not at construction, so a module-level ``ConfirmationStorage()``
    in a handler file works whenever the module is imported. Entries expire
    after ``expires`` seconds (None: never).

    ``db=`` takes any dict-like object instead (1.x's ``ConfirmationStorage(db={})``,
    handy in tests); each instance without one gets Redis, never a dict shared
    with other instances. The counts of :meth:`allow_unsolicited` and the order
    of pending confirmations then live in this instance too.

    At most ``max_pending`` confirmations wait per target (None: no bound);
    storing one more drops the oldest (Redis: a sorted set per target,
    ``NAMESPACE:confirm:TARGET``, scored by when each was stored).
    """

    def __init__(
        self,
        db: MutableMapping[str, Any] | None = None,
        *,
        conn: redis.Redis | None = None,
        names: Names | None = None,
        expires: int | None = DEFAULT_EXPIRES,
        max_pending: int | None = DEFAULT_MAX_PENDING,
        clock: Any = time.time,
    ) -> None:
        self.db = db
        self._conn = conn
        self._names = names
        self._settings_conn: redis.Redis | None = None
        self._settings_names: Names | None = None
        self.expires = expires
        self.max_pending = max_pending
        self.clock = clock
        # Without Redis (db=): target -> sender -> when stored, and (address, hour) -> unsolicited count.
        self._order: dict[str, dict[str, float]] = {}
        self._sent: dict[tuple[str, int], int] = {}
        _STORAGES.add(self)

    @property
    def confirmations(self) -> MutableMapping[str, Any]:
        """Every pending confirmation, ``key(target, sender)`` → ``(secret, pending id)``: 1.x's attribute.

        With ``db=`` it is that object itself, as in 1.x; with Redis, a
        mapping over this namespace's confirmations (reading, assigning and
        deleting go through :meth:`get`, :meth:`store` and :meth:`delete`, so
        the per-target bound and the expiry still hold).
        """
        if self.db is not None:
            return self.db
        return _RedisConfirmations(self)

    # -- where ------------------------------------------------------------

    def _redis(self) -> tuple[redis.Redis, Names]:
        current = context.get()
        conn = self._conn or (current.conn if current is not None else None)
        names = self._names or (current.names if current is not None else None)
        if conn is None or names is None:
            settings_conn, settings_names = self._from_settings(need_conn=conn is None)
            conn = conn or settings_conn
            names = names or settings_names
        assert conn is not None
        return conn, names

    def _from_settings(self, need_conn: bool) -> tuple[redis.Redis | None, Names]:
        """Redis and names from the application's settings (scripts, tests without a context)."""
        if self._settings_names is None or (need_conn and self._settings_conn is None):
            from lamson import settings as lamson_settings
            from lamson.connection import connect

            try:
                module = lamson_settings.load()
            except lamson_settings.SettingsError:
                if need_conn:
                    raise
                module = None
            self._settings_names = names_for(module) if module is not None else Names(DEFAULT_NAMESPACE)
            if need_conn and module is not None:
                self._settings_conn = connect(module.redis_url)
        return self._settings_conn, self._settings_names

    def key(self, target: str, from_address: str) -> str:
        """The storage key of one pending confirmation (a Redis key: ``NAMESPACE:confirm:TARGET:SENDER``)."""
        parts = (_key_part(str(target)), _key_part(normal_address(from_address)))
        if self.db is not None:
            return ":".join(parts)
        return self._redis()[1].key("confirm", *parts)

    def _index(self, target: str) -> str:
        """The Redis sorted set of the senders with a confirmation pending for ``target``."""
        return self._redis()[1].key("confirm", _key_part(str(target)))

    # -- the 1.x interface -----------------------------------------------

    def get(self, target: str, from_address: str) -> tuple[str | None, str | None]:
        """``(expected secret, pending message id)``, or ``(None, None)`` when nothing is pending."""
        key = self.key(target, from_address)
        if self.db is not None:
            found = self.db.get(key)
            return (found[0], found[1]) if found else (None, None)
        conn, _ = self._redis()
        secret, pending = conn.hmget(key, ["secret", "pending_id"])
        if secret is None or pending is None:
            return None, None
        return _text(secret), _text(pending)

    def store(self, target: str, from_address: str, expected_secret: str, pending_message_id: str) -> list[str]:
        """Remember the secret and the pending message for ``(target, sender)``, replacing any earlier one.

        Returns the pending message ids of the confirmations dropped to stay within ``max_pending``
        for this target (oldest first), for the caller to drop their messages.
        """
        sender = normal_address(from_address)
        key = self.key(target, sender)
        now = float(self.clock())
        if self.db is not None:
            self.db[key] = (expected_secret, pending_message_id)
            order = self._order.setdefault(str(target), {})
            order.pop(sender, None)
            order[sender] = now
            dropped: list[str] = []
            while self.max_pending is not None and len(order) > max(1, self.max_pending):
                oldest = next(iter(order))
                del order[oldest]
                found = self.db.pop(self.key(target, oldest), None)
                if found:
                    dropped.append(found[1])
            return dropped
        conn, _ = self._redis()
        index = self._index(target)
        with conn.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"secret": expected_secret, "pending_id": pending_message_id})
            if self.expires:
                pipe.expire(key, int(self.expires))
                pipe.zremrangebyscore(index, "-inf", now - self.expires)  # their hashes expired already
            pipe.zadd(index, {sender: now})
            if self.expires:
                pipe.expire(index, int(self.expires))
            pipe.execute()
        return self._evict(conn, target, index)

    def _evict(self, conn: redis.Redis, target: str, index: str) -> list[str]:
        """Drop the oldest confirmations of ``target`` beyond ``max_pending``; their pending ids."""
        if self.max_pending is None:
            return []
        extra = int(conn.zcard(index)) - max(1, self.max_pending)
        if extra <= 0:
            return []
        dropped: list[str] = []
        # ZPOPMIN is atomic: two workers evicting at once never both take (and report) one entry.
        popped: list[tuple[Any, float]] = list(conn.zpopmin(index, extra))  # type: ignore[arg-type]
        for member, _ in popped:
            key = self.key(target, _text(member))
            with conn.pipeline(transaction=True) as pipe:
                pipe.hget(key, "pending_id")
                pipe.delete(key)
                pending, _ = pipe.execute()
            if pending is not None:
                dropped.append(_text(pending))
        if dropped:
            log.warning("%d pending confirmation(s) for %r dropped: more than %d were waiting",
                        len(dropped), target, self.max_pending)
        return dropped

    def delete(self, target: str, from_address: str) -> None:
        """Forget the pending confirmation of ``(target, sender)`` (none: nothing happens)."""
        key = self.key(target, from_address)
        if self.db is not None:
            self.db.pop(key, None)
            self._order.get(str(target), {}).pop(normal_address(from_address), None)
            return
        conn, _ = self._redis()
        with conn.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.zrem(self._index(target), normal_address(from_address))
            pipe.execute()

    def pending_count(self, target: str) -> int:
        """How many confirmations wait for ``target``."""
        if self.db is not None:
            return len(self._order.get(str(target), {}))
        conn, _ = self._redis()
        return int(conn.zcard(self._index(target)))

    def allow_unsolicited(self, address: str, per_hour: int) -> bool:
        """Count one unsolicited message to ``address`` in this clock hour; False when it would exceed
        ``per_hour`` (0: no cap). Counted under the namespace (``NAMESPACE:unsolicited:ADDRESS:HOUR``),
        so every worker of the application shares one count per address."""
        if per_hour <= 0:
            return True
        address = normal_address(address)
        hour = int(self.clock()) // UNSOLICITED_WINDOW
        if self.db is not None:
            for stale in [k for k in self._sent if k[1] != hour]:
                del self._sent[stale]
            count = self._sent.get((address, hour), 0) + 1
            self._sent[(address, hour)] = count
            return count <= per_hour
        conn, names = self._redis()
        key = names.key("unsolicited", _key_part(address), str(hour))
        with conn.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, UNSOLICITED_WINDOW + 60)
            count, _ = pipe.execute()
        return int(count) <= per_hour

    def clear(self) -> None:
        """Forget every pending confirmation of this application (its namespace only), and the counts of
        unsolicited mail sent."""
        if self.db is not None:
            self.db.clear()
            self._order.clear()
            self._sent.clear()
            return
        conn, names = self._redis()
        batch: list[bytes] = []
        for key in conn.scan_iter(match=names.key("confirm", "*"), count=500):
            batch.append(key)
            if len(batch) >= 500:
                conn.delete(*batch)
                batch = []
        if batch:
            conn.delete(*batch)
        for key in conn.scan_iter(match=names.key("unsolicited", "*"), count=500):
            conn.delete(key)


#: Every storage of this process, for :func:`forget_unsolicited` (a test starting from scratch).
_STORAGES: weakref.WeakSet[ConfirmationStorage] = weakref.WeakSet()


def forget_unsolicited() -> None:
    """Forget this application's counts of unsolicited mail: ``RouterConversation.begin()`` does, so a test
    suite that asks one address to confirm many times (as Lamson 1.x test suites do: 1.x had no cap) starts
    each conversation from scratch. Never raises: without a Redis there is nothing there to forget."""
    for storage in list(_STORAGES):
        storage._sent.clear()
    try:
        conn, names = ConfirmationStorage()._redis()
        for key in conn.scan_iter(match=names.key("unsolicited", "*"), count=500):
            conn.delete(key)
    except Exception as exc:  # noqa: BLE001 - no Redis, no settings: nothing counted there
        log.debug("no unsolicited-mail counts forgotten in Redis: %s", exc)


class _RedisConfirmations(MutableMapping[str, Any]):
    """:attr:`ConfirmationStorage.confirmations` on Redis: the storage's keys, seen as a dict."""

    def __init__(self, storage: ConfirmationStorage) -> None:
        self.storage = storage

    def _split(self, key: str) -> tuple[str, str]:
        """``NAMESPACE:confirm:TARGET:SENDER`` → ``(target, sender)``; KeyError for any other key."""
        prefix = self.storage._redis()[1].key("confirm", "")
        parts = key[len(prefix):].split(":") if isinstance(key, str) and key.startswith(prefix) else []
        if len(parts) != 2 or not all(parts):
            raise KeyError(key)
        return _unkey_part(parts[0]), _unkey_part(parts[1])

    def __getitem__(self, key: str) -> tuple[str, str]:
        secret, pending = self.storage.get(*self._split(key))
        if secret is None or pending is None:
            raise KeyError(key)
        return secret, pending

    def __setitem__(self, key: str, value: tuple[str, str]) -> None:
        secret, pending = value
        self.storage.store(*self._split(key), secret, pending)

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError when absent, as a dict
        self.storage.delete(*self._split(key))

    def __iter__(self) -> Iterator[str]:
        conn, names = self.storage._redis()
        prefix = names.key("confirm", "")
        for raw in conn.scan_iter(match=prefix + "*:*", count=500):
            key = _text(raw)
            if key[len(prefix):].count(":") == 1:  # TARGET:SENDER, not a target's index
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class ConfirmationEngine:
    """Sends confirmation requests and checks the answers.

    ``pending_queue`` is a Maildir path (or a :class:`lamson.queue.Queue`)
    where first messages wait for their confirmation; ``storage`` defaults
    to a Redis :class:`ConfirmationStorage` (the guide passes only the queue).
    """

    #: How often (seconds) :meth:`register` also drops pending messages nobody can confirm any more.
    EXPIRE_EVERY = 3600.0

    def __init__(self, pending_queue: str | Queue | Any, storage: ConfirmationStorage | None = None, *,
                 unsolicited_per_hour: int | None = None) -> None:
        """``unsolicited_per_hour``: the cap of :meth:`may_send`; None reads the application's
        ``unsolicited_per_hour`` setting at each use (the worker's settings, else the loaded ones)."""
        self.pending = pending_queue if isinstance(pending_queue, Queue) else Queue(pending_queue)
        self.storage = storage if storage is not None else ConfirmationStorage()
        self.unsolicited_per_hour = unsolicited_per_hour
        self._expired_at = float("-inf")

    def per_hour(self) -> int:
        """The unsolicited-mail cap in force: the one given, else the setting."""
        if self.unsolicited_per_hour is not None:
            return int(self.unsolicited_per_hour)
        from lamson.settings import DEFAULTS

        current = context.get()
        if current is not None and current.settings is not None:
            return int(current.config.unsolicited_per_hour)
        try:
            found = getattr(context.app_settings(), "unsolicited_per_hour", None)
        except Exception:  # noqa: BLE001 - no settings to load (a script): the default
            found = None
        return int(DEFAULTS["unsolicited_per_hour"] if found is None else found)

    def may_send(self, address: str) -> bool:
        """Count one unsolicited message (a confirmation request, a help or refusal answer) to ``address``;
        False when ``address`` had its ``unsolicited_per_hour`` this hour, and must get nothing.

        Such mail goes to an address that proved nothing: anyone can name a victim as the sender,
        to many of our addresses, many times. The cap is per address, whatever address of ours was
        written to, so one application mails a victim at most that many times an hour. Mail to an
        address that proved itself (a member's copy of a post, the welcome after a confirmation)
        is not counted.
        """
        if self.storage.allow_unsolicited(address, self.per_hour()):
            return True
        log.warning("no more unsolicited mail to <%s> this hour: %d sent (unsolicited_per_hour)",
                    normal_address(address), self.per_hour())
        return False

    def expire_pending(self, now: float | None = None) -> int:
        """Drop pending messages older than the storage keeps their secrets; return how many.

        Their confirmation has expired (Redis forgot the secret), so nobody
        can confirm them any more; without this, every sign-up that was never
        answered (a typo, a forged sender, a spammer) would stay in the
        pending Maildir for good. :meth:`register` calls it at most every
        :attr:`EXPIRE_EVERY` seconds; a storage without expiry keeps them.
        """
        expires = getattr(self.storage, "expires", None)
        if not expires:
            return 0
        cutoff = (time.time() if now is None else now) - expires
        removed = 0
        for key in self.pending.keys():
            path = maildir.locate(self.pending.path, key)
            try:
                stale = path is not None and path.stat().st_mtime < cutoff
            except OSError:  # confirmed and removed meanwhile
                continue
            if stale and self.pending.remove(key):
                removed += 1
        if removed:
            log.info("dropped %d pending message(s) of expired confirmations from %s", removed, self.pending.path)
        return removed

    def make_random_secret(self) -> str:
        """32 lowercase hex digits from :mod:`secrets` (128 bits): unguessable, and fits ``[a-z0-9]+`` routes."""
        return secrets.token_hex(16)

    def push_pending(self, message: Any) -> str:
        """Keep ``message`` until it is confirmed; return its id."""
        return self.pending.push(message)

    def get_pending(self, pending_id: str) -> Any:
        """The pending message (a MailRequest), or None."""
        try:
            return self.pending.get(pending_id)
        except ValueError:  # not a Maildir key (maildir.BadKey): nothing of ours
            return None

    def delete_pending(self, pending_id: str) -> None:
        """Drop a pending message (none: nothing happens)."""
        try:
            self.pending.remove(pending_id)
        except ValueError:
            pass

    def register(self, target: str, message: Any, sender: str | None = None) -> str:
        """Keep ``message`` pending and return the address local part to confirm with: ``TARGET-confirm-SECRET``.

        The confirmation belongs to ``sender`` (default: the message's envelope sender), the
        address whose answer :meth:`verify` accepts. A sender who registers again for the same
        target gets a new secret; the message pending from the earlier request is dropped, and so
        are those of the oldest confirmations beyond the storage's ``max_pending``.
        """
        sender = normal_address(sender) if sender else _sender(message)
        if not sender:
            raise ValueError("cannot register a confirmation for a message without a sender")
        if time.monotonic() - self._expired_at >= self.EXPIRE_EVERY:
            self._expired_at = time.monotonic()
            self.expire_pending()
        _, old_pending = self.storage.get(target, sender)
        secret = self.make_random_secret()
        pending_id = self.push_pending(message)
        dropped = self.storage.store(target, sender, secret, pending_id) or []
        for stale in [old_pending, *dropped]:
            if stale and stale != pending_id:
                self.delete_pending(stale)
        return f"{target}-confirm-{secret}"

    def send(self, relay: Any, target: str, message: Any, template: str, vars: dict[str, Any]) -> str | None:  # noqa: A002
        """Register ``message`` and mail its sender the confirmation request rendered from ``template``.

        ``vars`` must hold ``host`` (the domain of the confirm address); like
        1.x it gains ``confirm_address``, ``target`` and ``message`` for the
        template. The request goes From and Reply-To
        ``TARGET-confirm-SECRET@HOST`` to the envelope sender (the address the
        confirmation is stored for). A message from the null sender ``<>``
        (a bounce) gets none, nor does an address that had its
        ``unsolicited_per_hour`` (:meth:`may_send`): both return None, and
        nothing is kept pending. Otherwise returns the confirm address.
        """
        sender = _sender(message)
        if not sender:
            log.info("not sending a confirmation for %r: the message has no sender (<>)", target)
            return None
        if not vars.get("host"):
            raise KeyError("ConfirmationEngine.send needs vars['host'], the domain of the confirm address")
        if not self.may_send(sender):
            return None
        confirm_address = self.register(target, message)
        vars.update(confirm_address=confirm_address, target=target, message=message)
        address = f"{confirm_address}@{vars['host']}"
        # The addresses come from the message: set as values, never rendered as templates.
        reply = view.respond(vars, Body=template)
        reply["From"] = address
        reply["To"] = sender
        reply["Subject"] = "Confirmation required"
        reply["Reply-To"] = address
        relay.deliver(reply, To=sender)
        return address

    def verify(self, target: str, from_address: str, expect_secret: str) -> Any:
        """The pending message when ``expect_secret`` is the one sent to ``from_address``, else None.

        A match forgets the secret (it works once); the pending message stays
        in the queue until :meth:`delete_pending`. The address may be given in
        any case, bare or with a display name.
        """
        secret, pending_id = self.storage.get(target, from_address)
        if not _same(secret, expect_secret):
            return None
        self.storage.delete(target, from_address)
        return self.get_pending(pending_id) if pending_id else None

    def cancel(self, target: str, from_address: str, expect_secret: str) -> bool:
        """Drop a pending confirmation and its message, if ``expect_secret`` matches; True if it did."""
        secret, pending_id = self.storage.get(target, from_address)
        if not _same(secret, expect_secret):
            return False
        self.storage.delete(target, from_address)
        if pending_id:
            self.delete_pending(pending_id)
        return True

    def clear(self) -> None:
        """Forget every pending confirmation and message."""
        self.storage.clear()
        self.pending.clear()


def _sender(message: Any) -> str:
    """The sender a confirmation belongs to: ``route_from``, else the envelope/header From."""
    sender = getattr(message, "route_from", None)
    if sender is None and getattr(message, "From", None):
        sender = message.From
    return normal_address(sender)


def _same(expected: str | None, given: Any) -> bool:
    """Constant-time comparison of the stored secret with the one in the address."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.strip().lower().encode("utf-8"))
