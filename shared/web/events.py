"""Live updates: ``GET /api/events``, a server-sent event stream of new messages in any mailbox.

One poller task per web process (not one per client) refreshes the mail index every
:data:`POLL_SECONDS` (lamson.web.index: a scan costs a few ``stat`` calls when nothing changed) and
hands each message that appeared to every subscriber's queue. A subscriber whose queue is full (a
client that stopped reading) is dropped; one that disconnected ends when its next write fails,
at the latest at the next ping (every :data:`PING_SECONDS`). Server-sent events need nothing but
Starlette's StreamingResponse, and the browser's EventSource reconnects by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
PING_SECONDS = 15.0
QUEUE_SIZE = 1000


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False


class Hub:
    """The poller and its subscribers (one per process, kept in ``ctx.services["events"]``).

    ``refresh``: brings the index up to date (run in a worker thread); ``added_since(last_id)``:
    ``(new last id, events)`` for the rows added after ``last_id``.
    """

    def __init__(self, refresh: Callable[[], object],
                 added_since: Callable[[int], tuple[int, list[dict[str, Any]]]],
                 last_id: Callable[[], int]) -> None:
        self.refresh = refresh
        self.added_since = added_since
        self.last_id = last_id
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="lamson-web-events")

    async def stop(self) -> None:
        for sub in list(self.subscribers):
            self._close(sub)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        # The rows before this id were indexed by an earlier run; what the first scan adds is
        # news only if it arrived after the start (``added_since`` judges: lamson.web.mail_api.hub).
        last: int | None = None
        while True:
            try:
                if last is None:
                    last = await run_in_threadpool(self.last_id)
                await run_in_threadpool(self.refresh)
                last, events = await run_in_threadpool(self.added_since, last)
                for event in events:
                    self.publish(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bad scan must not end live updates for good
                log.exception("lamson web: refreshing the mail index failed; trying again")
                await asyncio.sleep(5)
            await asyncio.sleep(POLL_SECONDS)

    def publish(self, event: dict[str, Any]) -> None:
        for sub in list(self.subscribers):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("lamson web: an event stream client is not reading; dropping it")
                self._close(sub)

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _close(self, sub: Subscriber) -> None:
        sub.dropped = True
        self.subscribers.discard(sub)
        try:
            sub.queue.put_nowait(None)
        except asyncio.QueueFull:
            pass


def stream(hub: Hub, request: Request) -> StreamingResponse:
    """The event stream of one client."""
    sub = hub.subscribe()

    async def body() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n: connected\n\n"
            while not sub.dropped:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), timeout=PING_SECONDS)
                except TimeoutError:
                    # A client that went away makes this write fail: Starlette then ends the
                    # generator (it also watches for the disconnect itself).
                    yield "event: ping\ndata: {}\n\n"
                    continue
                if event is None:
                    break
                yield f"event: message\ndata: {json.dumps(event)}\n\n"
        finally:
            hub.unsubscribe(sub)

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
