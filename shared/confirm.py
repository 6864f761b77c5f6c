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
"""

from __future__ import annotations

import email.utils
import hmac
import logging
import secrets
import time
from collections.abc import MutableMapping
from typing import Any

import redis

from lamson import context, maildir, view
from lamson.names import DEFAULT_NAMESPACE, Names, names_for
from lamson.queue import Queue

log = logging.getLogger(__name__)

__all__ = ["ConfirmationEngine", "ConfirmationStorage"]

#: How long an unanswered confirmation stays valid in Redis (seconds): a week.
DEFAULT_EXPIRES = 7 * 24 * 3600


def normal_address(address: Any) -> str:
    """The bare, lowercased address (``"Joe <Joe@X.com>"`` → ``"joe@x.com"``), so case never matters."""
    text = str(address or "").strip()
    if "<" in text:
        text = email.utils.parseaddr(text)[1] or text
    return text.strip().lower()


def _key_part(text: str) -> str:
    """A key component with ``%`` and ``:`` escaped, so ``("a:b", "c")`` and ``("a", "b:c")`` differ."""
    return text.replace("%", "%25").replace(":", "%3A")


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
    with other instances.
    """

    def __init__(
        self,
        db: MutableMapping[str, Any] | None = None,
        *,
        conn: redis.Redis | None = None,
        names: Names | None = None,
        expires: int | None = DEFAULT_EXPIRES,
    ) -> None:
        self.db = db
        self._conn = conn
        self._names = names
        self._settings_conn: redis.Redis | None = None
        self._settings_names: Names | None = None
        self.expires = expires

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

    def store(self, target: str, from_address: str, expected_secret: str, pending_message_id: str) -> None:
        """Remember the secret and the pending message for ``(target, sender)``, replacing any earlier one."""
        key = self.key(target, from_address)
        if self.db is not None:
            self.db[key] = (expected_secret, pending_message_id)
            return
        conn, _ = self._redis()
        with conn.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"secret": expected_secret, "pending_id": pending_message_id})
            if self.expires:
                pipe.expire(key, int(self.expires))
            pipe.execute()

    def delete(self, target: str, from_address: str) -> None:
        """Forget the pending confirmation of ``(target, sender)`` (none: nothing happens)."""
        key = self.key(target, from_address)
        if self.db is not None:
            self.db.pop(key, None)
            return
        self._redis()[0].delete(key)

    def clear(self) -> None:
        """Forget every pending confirmation of this application (its namespace only)."""
        if self.db is not None:
            self.db.clear()
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

    def __init__(self, pending_queue: str | Queue | Any, storage: ConfirmationStorage | None = None) -> None:
        self.pending = pending_queue if isinstance(pending_queue, Queue) else Queue(pending_queue)
        self.storage = storage if storage is not None else ConfirmationStorage()
        self._expired_at = float("-inf")

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

    def register(self, target: str, message: Any) -> str:
        """Keep ``message`` pending and return the address local part to confirm with: ``TARGET-confirm-SECRET``.

        A sender who registers again for the same target gets a new secret;
        the message pending from the earlier request is dropped.
        """
        sender = _sender(message)
        if not sender:
            raise ValueError("cannot register a confirmation for a message without a sender")
        if time.monotonic() - self._expired_at >= self.EXPIRE_EVERY:
            self._expired_at = time.monotonic()
            self.expire_pending()
        _, old_pending = self.storage.get(target, sender)
        secret = self.make_random_secret()
        pending_id = self.push_pending(message)
        self.storage.store(target, sender, secret, pending_id)
        if old_pending and old_pending != pending_id:
            self.delete_pending(old_pending)
        return f"{target}-confirm-{secret}"

    def send(self, relay: Any, target: str, message: Any, template: str, vars: dict[str, Any]) -> str | None:  # noqa: A002
        """Register ``message`` and mail its sender the confirmation request rendered from ``template``.

        ``vars`` must hold ``host`` (the domain of the confirm address); like
        1.x it gains ``confirm_address``, ``target`` and ``message`` for the
        template. The request goes From and Reply-To
        ``TARGET-confirm-SECRET@HOST`` to the envelope sender (the address the
        confirmation is stored for). A message from the null sender ``<>``
        (a bounce) gets none: returns None. Otherwise returns the confirm address.
        """
        sender = _sender(message)
        if not sender:
            log.info("not sending a confirmation for %r: the message has no sender (<>)", target)
            return None
        if not vars.get("host"):
            raise KeyError("ConfirmationEngine.send needs vars['host'], the domain of the confirm address")
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
