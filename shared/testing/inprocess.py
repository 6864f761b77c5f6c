"""The routing job in the test process: what ``RouterConversation`` runs each message through.

An application's tests must see what production does to a message before and
after its handlers: screening, loop detection, sender authentication
(``message.auth``), ``message.envelope``, the admission checks, parking. So
a conversation does not call the Router directly: it spools the message and
runs the very routing job a worker runs (lamson.workers.routing_job), on a
runtime whose spool, senders' lines and wake-ups live in this process — no
Redis, no servers, as Lamson 1.x's RouterConversation needed none.

What the job parks goes where a worker parks it (``undeliverable_dir``, one
record per message, lamson.parked). What a handler sends goes through
``settings.relay`` as the test configured it (a CapturingRelay in
``config/testing.py``), not through this runtime: it is not installed for
1.x entry points, so ``Relay.deliver`` and ``defer()`` behave as they did in
tests before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import redis

from lamson import parked as parking
from lamson.envelope import Envelope
from lamson.maildir import new_key
from lamson.names import Names, names_for
from lamson.order import Lines, sender_of
from lamson.router.routing import RouterClass
from lamson.runtime import Runtime
from lamson.spool import Claim, Spooled, key_time
from lamson.typed_settings import Settings

if TYPE_CHECKING:
    from lamson.workers.routing_job import RoutingJob


class NoRedis:
    """Stands where a runtime's Redis connection would be: any use of it is a clear error."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the in-process test runtime has no Redis (asked for {name!r})")


class MemorySpool:
    """The spool's lifecycle (waiting → claimed → finished, released, parked) in a dict."""

    def __init__(self, group: str, parked: Path) -> None:
        self.group = group
        self.parked = parked
        self._records: dict[str, Spooled] = {}
        self._due: dict[str, float] = {}  # waiting keys: when due
        self._claims: dict[str, Claim] = {}

    def put(self, envelope: Envelope, data: bytes, *, sync: bool = True, delay: float = 0.0) -> str:
        key = new_key()  # named as the Maildir spool names them: the order protocol reads time from the key
        self._records[key] = Spooled(key, envelope, bytes(data))
        self._due[key] = time.time() + delay
        return key

    def commit(self, keys: Iterable[str]) -> None:
        return None

    def get(self, key: str) -> Spooled | None:
        return self._records.get(key)

    def claim(self, key: str, worker: str) -> Spooled | None:
        if key not in self._due:
            return None
        del self._due[key]
        self._claims[key] = Claim(key, worker, time.time())
        return self._records[key]

    def claim_waiting(self, worker: str, limit: int) -> list[Spooled]:
        got = [self.claim(key, worker) for key in self.waiting(due=True)[:limit]]
        return [s for s in got if s is not None]

    def finish(self, key: str, worker: str) -> bool:
        if key not in self._claims:
            return False
        del self._claims[key]
        self._records.pop(key, None)
        return True

    def release(self, spooled: Spooled, worker: str, *, delay: float = 0.0,
                envelope: Envelope | None = None) -> bool:
        if self._claims.pop(spooled.key, None) is None:
            return False
        if envelope is not None:
            self._records[spooled.key] = replace(spooled, envelope=envelope)
        self._due[spooled.key] = time.time() + delay
        return True

    def park(self, spooled: Spooled, worker: str, reason: str) -> str:
        key = parking.park(self.parked, spooled.envelope, reason, spooled.data, sync=False)
        self.finish(spooled.key, worker)
        return key

    def park_unreadable(self, key: str, worker: str, reason: str) -> str | None:
        return None  # records here are objects, never unreadable

    def where(self, key: str) -> str | None:
        if key in self._due:
            return "waiting"
        return "claimed" if key in self._claims else None

    def is_due(self, key: str) -> bool:
        return self._due.get(key, float("inf")) <= time.time()

    def waiting(self, *, due: bool = False, older_than: float = 0.0) -> list[str]:
        now = time.time()
        keys = [k for k, when in self._due.items() if not due or when <= now]
        return sorted(keys, key=lambda k: (key_time(k), k))

    def claims(self) -> list[Claim]:
        return list(self._claims.values())

    def recover(self, is_dead: Callable[[Claim], bool]) -> list[str]:
        return []

    def cleanup(self) -> int:
        return 0


class MemoryLines(Lines):
    """Senders' lines (lamson.order) in a dict: the same answers as the Redis ones, for one process."""

    def __init__(self) -> None:
        self._lines: dict[str, dict[str, float]] = {}

    def _sorted(self, sender: str) -> list[str]:
        line = self._lines.get(sender_of(sender), {})
        return sorted(line, key=lambda k: (line[k], k))

    def add(self, entries: Iterable[tuple[str, str]], pipeline: Any = None) -> None:
        for key, sender in entries:
            if sender_of(sender):
                self._lines.setdefault(sender_of(sender), {}).setdefault(key, key_time(key))

    def head(self, sender: str) -> str | None:
        found = self._sorted(sender) if sender_of(sender) else []
        return found[0] if found else None

    def heads(self, senders: list[str]) -> list[str | None]:
        return [self.head(sender) for sender in senders]

    def advance(self, sender: str, handled: list[str], count: int = 1) -> list[str]:
        if not sender_of(sender):
            return []
        line = self._lines.get(sender_of(sender), {})
        for key in handled:
            line.pop(key, None)
        return self._sorted(sender)[:count]

    def leave(self, handled: dict[str, list[str]]) -> None:
        for sender, keys in handled.items():
            self.advance(sender, keys)


class InProcessRuntime(Runtime):
    """A router worker's runtime in the test process: in-memory spools, lines and wake-ups, no Redis.

    Wake-ups are not sent anywhere: the conversation runs the job itself, and
    :meth:`lamson.testing.RouterConversation.drain` routes what was put back to wait.
    """

    def __init__(self, settings: Any, router: RouterClass) -> None:
        config = Settings.of(settings)
        super().__init__(settings=config.module, conn=cast(redis.Redis, NoRedis()), names=_names(config),
                         worker_id="test.router.inprocess.1", role="router", router=router)
        self.configure(config)
        self._lines: dict[str, MemoryLines] = {}

    def spool(self, group: str = "incoming") -> MemorySpool:
        if group not in self.spools:
            parked = self.config.bounced_dir if group == "outgoing" else self.config.undeliverable_dir
            self.spools[group] = MemorySpool(group, Path(parked))
        return cast(MemorySpool, self.spools[group])

    def lines(self, group: str = "incoming") -> MemoryLines:
        return self._lines.setdefault(group, MemoryLines())

    def wake_router(self, group: str, keys: list[str], *, delay: float = 0.0) -> None:
        return None

    def wake_relay(self, keys: list[str], counts: dict[str, int] | None = None) -> None:
        return None

    def count(self, counts: dict[str, int]) -> None:
        return None


def _names(config: Settings) -> Names:
    try:
        return names_for(config.module)
    except Exception:  # a test's settings without a usable namespace
        return Names("test")


def accept(runtime: InProcessRuntime, message: Any, *, auth_user: str = "") -> str:
    """Spool a MailRequest as the receiver would (envelope from its Peer/From/To) and join its sender's line.

    ``auth_user``: as if it came in on the submission listener, authenticated as that user (the receiver
    records it in the envelope; it is what ``message.sender`` then answers).
    """
    rcpts = message.To if isinstance(message.To, list | tuple) else [message.To]
    extra = {"auth": auth_user} if auth_user else {}
    envelope = Envelope(mail_from=str(message.From or ""), rcpt_tos=tuple(str(r) for r in rcpts),
                        peer=str(getattr(message, "Peer", "") or "127.0.0.1"), helo="localhost", extra=extra)
    data = message.Data if isinstance(message.Data, bytes) else str(message.Data).encode("utf-8", "surrogateescape")
    key = runtime.spool().put(envelope, data)
    runtime.lines().add([(key, envelope.mail_from)])
    return key


def route(runtime: InProcessRuntime, keys: list[str], group: str = "incoming") -> RoutingJob:
    """Run the routing job on ``keys`` (none: whatever waits and is due), as a worker would; the job done
    (``summary``: "1 routed"; ``ran``: how many state functions ran)."""
    from lamson.workers.routing_job import RoutingJob

    runtime.propagate_errors = not runtime.routes().LOG_EXCEPTIONS
    job = RoutingJob(runtime, runtime.group(group))
    job.run(keys)
    return job
