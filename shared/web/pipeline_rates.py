"""Live rates for the pipeline page: the stage counters lamson.metrics keeps in Redis, sampled.

The counters are totals since the application's Redis was new (``NAMESPACE:metrics:counters``, written
by the receiver, the router workers and the relay; lamson.metrics). A rate is the difference of two
samples over the time between them, so the web process samples the hash every few seconds in a
background task and keeps the last minutes in a ring buffer: the page asks for the series, never for
a Redis round trip per point. A sample Redis did not answer is a gap, not a zero; a total that went
down (the hash deleted) gives no rate for that step rather than a negative one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread

from lamson.web.context import WebContext

log = logging.getLogger("lamson.web")

#: Series shown -> the counter whose fields are summed (``routed`` has one field per group).
SERIES: dict[str, str] = {"accepted": "accepted", "routed": "routed", "delivered": "relayed"}

#: Seconds between samples, and how long they are kept.
INTERVAL = 2.0
KEEP = 15 * 60.0

SERVICE = "pipeline.rates"


def totals(raw: Mapping[Any, Any]) -> dict[str, int]:
    """The series' totals from the counters hash: a counter's own field plus its labelled ones (``routed:posts``)."""
    found = dict.fromkeys(SERIES, 0)
    for k, v in raw.items():
        name = (k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)).split(":", 1)[0]
        for series, counter in SERIES.items():
            if name == counter:
                try:
                    found[series] += int(float(v.decode() if isinstance(v, bytes) else v))
                except (ValueError, UnicodeError):
                    pass
    return found


@dataclass
class Rates:
    """The ring buffer of samples: ``(time, totals)``, or ``(time, None)`` when Redis did not answer."""

    interval: float = INTERVAL
    keep: float = KEEP
    samples: deque[tuple[float, dict[str, int] | None]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    last_error: str | None = None

    def add(self, at: float, found: dict[str, int] | None) -> None:
        self.samples.append((at, found))
        while self.samples and self.samples[0][0] < at - self.keep:
            self.samples.popleft()

    def series(self, minutes: float, now: float | None = None) -> dict[str, list[list[float]]]:
        """Per series, ``[t, per_second]`` for each pair of consecutive answered samples ending in the last
        ``minutes`` (t: the later sample's Unix time)."""
        since = (time.time() if now is None else now) - minutes * 60
        out: dict[str, list[list[float]]] = {name: [] for name in SERIES}
        previous: tuple[float, dict[str, int] | None] | None = None
        for at, found in self.samples:
            if previous is not None and at >= since and found is not None and previous[1] is not None \
                    and at > previous[0]:
                for name in SERIES:
                    delta = found[name] - previous[1][name]
                    if delta >= 0:
                        out[name].append([round(at, 3), round(delta / (at - previous[0]), 3)])
            previous = (at, found)
        return out


def sample(ctx: WebContext) -> dict[str, int]:
    """The counters now (blocking: one HGETALL)."""
    from lamson.metrics import counters_key
    from lamson.names import names_for

    if ctx.conn is None:
        raise ConnectionError("no Redis connection")
    return totals(ctx.conn.hgetall(counters_key(names_for(ctx.settings))))


async def _run(ctx: WebContext, rates: Rates) -> None:
    while True:
        try:
            with anyio.fail_after(max(1.0, rates.interval)):
                found: dict[str, int] | None = await anyio.to_thread.run_sync(sample, ctx, abandon_on_cancel=True)
            rates.last_error = None
        except Exception as exc:  # Redis away, a timeout: a gap in the series
            found = None
            if rates.last_error is None:
                log.warning("pipeline rates: cannot read the counters: %s", exc)
            rates.last_error = " ".join(str(exc).split()) or type(exc).__name__
        rates.add(time.time(), found)
        await asyncio.sleep(rates.interval)


def rates_of(ctx: WebContext) -> Rates | None:
    found = ctx.services.get(SERVICE)
    return found if isinstance(found, Rates) else None


async def start(ctx: WebContext, interval: float = INTERVAL, keep: float = KEEP) -> Rates:
    """Start sampling in the running event loop (the web application's startup); once per context."""
    rates = rates_of(ctx)
    if rates is not None and rates.task is not None and not rates.task.done():
        return rates
    rates = Rates(interval=interval, keep=keep)
    rates.task = asyncio.get_running_loop().create_task(_run(ctx, rates), name="lamson-web-rates")
    ctx.services[SERVICE] = rates
    return rates


async def stop(ctx: WebContext) -> None:
    """Stop sampling (the application's shutdown); the samples stay readable."""
    rates = rates_of(ctx)
    if rates is None or rates.task is None:
        return
    rates.task.cancel()
    with suppress(asyncio.CancelledError):
        await rates.task
    rates.task = None


@asynccontextmanager
async def lifespan(ctx: WebContext, interval: float = INTERVAL) -> AsyncIterator[None]:
    """Sampling for as long as the block runs: ``async with lifespan(ctx): yield`` in the app's lifespan."""
    await start(ctx, interval)
    try:
        yield
    finally:
        await stop(ctx)
