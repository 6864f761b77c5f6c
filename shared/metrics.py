"""Metrics: counters every stage keeps in Redis, and the Prometheus exporter that reads them.

The stages are many processes on possibly many hosts, so counters live in
Redis, under the application's namespace (``NAMESPACE:metrics:counters``, a
hash, and ``NAMESPACE:metrics:latency`` for the histogram), incremented in
the round trips the stages already make where there is one:

* the receiver counts ``accepted`` in the pipeline that puts the messages in
  their senders' lines and wakes the router (lamson.receiver.enqueue), and
  its refusals by reason in the same pipeline (or, when no mail arrives,
  every few seconds from the same thread): the SMTP event loop never waits
  for Redis;
* a routing batch counts routed / parked / deferred in its commit, in the
  pipeline of the relay's wake-up when it has replies;
* the relay counts relayed / bounced / deferred / parked per job, with the
  accept-to-delivered latency of each reply delivered.

Counting never breaks mail flow: every error is swallowed (logged at debug),
and counts that could not be written are lost, not retried forever (the
receiver keeps its own until Redis answers).

``lamson metrics`` (:func:`serve`) is one exporter process per application:
a prometheus_client collector that reads those two hashes on each scrape and
computes the gauges there and then from the spool and outbox folders
(waiting, in flight, parked, oldest waiting message's age). docs/operations.md
lists the metric names, with example alert rules.

Latency: the router puts the accept time of the message being handled into
the outbox record of each reply (envelope extra ``accepted_at``, set by
lamson.relay.client while :func:`handling` is active); the relay observes
``now - accepted_at`` when the smart host accepts the reply. A reply sent
outside a handler (a script, a notification) has no accept time and is
measured from the moment it was written to the outbox.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamson.names import Names
from lamson.typed_settings import Settings

log = logging.getLogger("lamson.metrics")

#: Counter name -> (label name or None, help). A hash field is ``NAME`` or ``NAME:LABELVALUE``.
COUNTERS: dict[str, tuple[str | None, str]] = {
    "accepted": (None, "Messages the receiver accepted (250 after the spool write)."),
    "refused": ("reason", "SMTP commands the receiver refused, by reason."),
    "routed": ("group", "Messages router workers handled (all their recipients routed)."),
    "parked": ("group", "Messages parked (undeliverable_dir for router groups, bounced_dir for outgoing)."),
    "deferred": ("group", "Messages put back to wait: busy conversation, Redis trouble, retry, 4xx at the smart host."),
    "relayed": (None, "Replies the smart host accepted (for at least one recipient)."),
    "bounced": ("reason", "Replies given up on with a notification to the sender: refused (5xx) or expired."),
    "auth_failures": (None, "AUTH attempts on the submission listener whose credentials were wrong (535)."),
    "auth_throttled": (None, "AUTH attempts refused unchecked (454) while the account's or client's gate was closed."),
}

#: Upper bounds (seconds) of the accept-to-delivered histogram's buckets.
BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)

#: Envelope extra of an outbox record: when the message it answers was accepted (seconds, as text).
ACCEPTED_AT = "accepted_at"

#: How often the receiver writes refusals counted while no mail arrived (seconds).
FLUSH_INTERVAL = 5.0

#: The receiver's reply codes and what they mean, for ``refused{reason=...}``.
REFUSAL_REASONS: dict[str, str] = {
    "550 5.7.1": "relaying_denied",
    "452 4.5.3": "too_many_recipients",
    "553 5.6.7": "smtputf8_required",
    "553 5.1.7": "bad_sender",
    "553 5.1.3": "bad_recipient",
    "554 5.6.0": "nul_octets",
    "554 5.4.6": "mail_loop",
    "451 4.3.0": "spool_error",
}


def counters_key(names: Names) -> str:
    return names.key("metrics", "counters")


def latency_key(names: Names) -> str:
    return names.key("metrics", "latency")


def field(name: str, label: str | None = None) -> str:
    """The hash field of counter ``name`` (with its label's value)."""
    return name if label is None else f"{name}:{label}"


def bucket_of(seconds: float) -> str:
    for bound in BUCKETS:
        if seconds <= bound:
            return f"le:{bound:g}"
    return "le:+Inf"


# -- writing -------------------------------------------------------------------


def queue(pipe: Any, names: Names, counts: Mapping[str, int], latencies: Iterable[float] = ()) -> int:
    """Add the increments to ``pipe`` (a Redis pipeline about to be executed); never raises.

    Returns how many commands it added (0: none, or it failed), for :func:`execute`.
    """
    added = 0
    try:
        key = counters_key(names)
        for name, n in counts.items():
            if n:
                pipe.hincrby(key, name, int(n))
                added += 1
        seen = list(latencies)
        if seen:
            lkey = latency_key(names)
            buckets = Counter(bucket_of(max(0.0, s)) for s in seen)
            for bucket, n in buckets.items():
                pipe.hincrby(lkey, bucket, n)
                added += 1
            pipe.hincrby(lkey, "count", len(seen))
            pipe.hincrbyfloat(lkey, "sum", float(sum(max(0.0, s) for s in seen)))
            added += 2
        return added
    except Exception as exc:
        log.debug("metrics not counted: %r", exc)
        return added


def execute(pipe: Any, ours: int) -> list[Any]:
    """Execute a pipeline whose last ``ours`` commands are metrics increments.

    An error in the stage's own commands raises as ``pipe.execute()`` would; an
    error in an increment (someone wrote another type under the key) is only
    logged at debug, so counting can never make a wake-up look failed.
    """
    results: list[Any] = pipe.execute(raise_on_error=False)
    own = results[:len(results) - ours] if ours else results
    for result in own:
        if isinstance(result, Exception):
            raise result
    for result in results[len(own):]:
        if isinstance(result, Exception):
            log.debug("metrics not counted: %r", result)
    return results


def record(conn: Any, names: Names, counts: Mapping[str, int], latencies: Iterable[float] = ()) -> bool:
    """Write the increments in one round trip of their own; never raises."""
    seen = list(latencies)
    if not any(counts.values()) and not seen:
        return True
    try:
        with conn.pipeline(transaction=False) as pipe:
            if not queue(pipe, names, counts, seen):
                return False
            results = pipe.execute(raise_on_error=False)
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            log.debug("metrics not counted: %r", errors[0])
        return not errors
    except Exception as exc:
        log.debug("metrics not counted: %r", exc)
        return False


class Tally:
    """Counts kept in the process until a pipeline takes them (the receiver's, thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def take(self) -> dict[str, int]:
        with self._lock:
            taken = dict(self._counts)
            self._counts.clear()
        return taken

    def give_back(self, counts: Mapping[str, int]) -> None:
        """Counts whose pipeline failed: written with the next one."""
        with self._lock:
            self._counts.update(counts)

    def queue(self, pipe: Any, names: Names) -> tuple[dict[str, int], int]:
        """Put what is pending into ``pipe``: what it took (to :meth:`give_back` if the pipeline
        fails) and how many commands it added (for :func:`execute`)."""
        taken = self.take()
        added = queue(pipe, names, taken) if taken else 0
        return (taken if added else {}), added

    def flush(self, conn: Any, names: Names) -> None:
        """Write what is pending in a round trip of its own (nothing pending: nothing sent)."""
        taken = self.take()
        if taken and not record(conn, names, taken):
            self.give_back(taken)

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._counts)


#: The receiver process's pending counts (accepted, refused:REASON).
RECEIVER = Tally()


def refusal_reason(reply: str) -> str:
    return REFUSAL_REASONS.get(reply[:9], reply[:3] + (f" {reply[4:9]}" if reply[4:5].isdigit() else ""))


def counts_refusals(method: Any) -> Any:
    """Decorate an aiosmtpd ``handle_*`` method: a 4xx/5xx reply it returns is counted by reason."""
    import functools

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        reply = await method(*args, **kwargs)
        try:
            if isinstance(reply, str) and reply[:1] in ("4", "5"):
                RECEIVER.add(field("refused", refusal_reason(reply)))
        except Exception as exc:
            log.debug("refusal not counted: %r", exc)
        return reply

    return wrapper


def origin_extra() -> dict[str, str]:
    """The outbox envelope extra carrying the accept time of the message being handled (or nothing)."""
    from lamson import context

    current = context.handled()
    accepted = None if current is None else current.accepted_at
    return {} if accepted is None else {ACCEPTED_AT: f"{accepted:.6f}"}


def accepted_at(envelope: Any) -> float:
    """When the mail an outbox record answers was accepted (else when the record was written)."""
    try:
        return float(envelope.extra.get(ACCEPTED_AT) or envelope.received_at)
    except (TypeError, ValueError, AttributeError):
        return float(getattr(envelope, "received_at", time.time()))


#: The relay's outcomes (lamson.relay.jobs.Delivery.deliver) as counter fields.
RELAY_OUTCOMES: dict[str, str] = {
    "delivered": field("relayed"),
    "deferred": field("deferred", "outgoing"),
    "bounced": field("bounced", "refused"),
    "refused": field("bounced", "refused"),
    "expired": field("bounced", "expired"),
    "parked": field("parked", "outgoing"),
    "rate-limited": field("parked", "outgoing"),
}


def relay_counts(outcomes: Mapping[str, int]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for outcome, n in outcomes.items():
        name = RELAY_OUTCOMES.get(outcome)
        if name is not None:
            counts[name] += n
    return dict(counts)


# -- reading: the exporter -----------------------------------------------------


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _count_files(path: Path) -> int:
    total = 0
    for sub in ("new", "cur"):
        try:
            with os.scandir(path / sub) as entries:
                total += sum(1 for e in entries if not e.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


def spool_groups(settings: Settings) -> list[str]:
    """The worker groups whose spools there are to look at: incoming, outgoing, and the deferred groups
    whose folders exist (a Maildir spool; a Redis spool's deferred groups are not listed)."""
    found = ["incoming", "outgoing"]
    if settings.spool == "maildir":
        try:
            with os.scandir(settings.spool_dir) as entries:
                found += sorted(e.name[1:] for e in entries
                                if e.name.startswith(".") and e.is_dir() and (Path(e.path) / "new").is_dir())
        except OSError:
            pass
    return found


@dataclass(frozen=True)
class StageGauge:
    """One worker group's spool now: messages waiting (new/), claimed by a worker, the oldest one's age."""

    group: str
    waiting: int
    in_flight: int
    #: Seconds since the oldest waiting message was accepted or written; None when none waits.
    oldest_waiting_age: float | None


def stage_gauge(settings: Settings, conn: Any, group: str, now: float | None = None, *,
                spool: Any = None) -> StageGauge:
    """What the exporter's waiting / in-flight / oldest gauges say of ``group`` (``lamson web`` shows the
    same numbers): of its spool as the settings say, or of ``spool`` (a Maildir queue's own folder).
    Raises what the spool raises (Redis unreachable for a Redis spool)."""
    from lamson.spool import key_time, open_spool

    spool = open_spool(settings, conn, group) if spool is None else spool
    keys = spool.waiting()
    claims = spool.claims()
    times = [t for t in (key_time(k) for k in keys) if t > 0]
    now = time.time() if now is None else now
    return StageGauge(group, len(keys), len(claims), max(0.0, now - min(times)) if times else None)


class Collector:
    """A prometheus_client collector: counters from Redis, gauges from the spool, computed on each scrape."""

    def __init__(self, settings: Settings | Any, conn: Any, names: Names) -> None:
        self.settings = Settings.of(settings)  # once: every scrape reads it
        self.conn = conn
        self.names = names

    def groups(self) -> list[str]:
        """The worker groups whose spools are looked at: incoming, outgoing, and deferred queues seen."""
        return spool_groups(self.settings)

    def describe(self) -> list[Any]:
        return []  # the metrics are only known at scrape time (no describe-time Redis call)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        ns = self.names.namespace
        up = GaugeMetricFamily("lamson_redis_up", "1 when the exporter reached Redis at this scrape.",
                               labels=["namespace"])
        try:
            raw_counts = self.conn.hgetall(counters_key(self.names))
            raw_latency = self.conn.hgetall(latency_key(self.names))
            up.add_metric([ns], 1)
        except Exception as exc:
            log.warning("metrics: cannot read counters from Redis: %s", exc)
            raw_counts, raw_latency = {}, {}
            up.add_metric([ns], 0)
        yield up

        counts = {_text(k): int(float(_text(v))) for k, v in raw_counts.items()}
        for name, (label, doc) in COUNTERS.items():
            family = CounterMetricFamily(f"lamson_{name}", doc, labels=["namespace"] + ([label] if label else []))
            if label is None:
                family.add_metric([ns], counts.get(name, 0))
            else:
                prefix = name + ":"
                for key in sorted(k for k in counts if k.startswith(prefix)):
                    family.add_metric([ns, key[len(prefix):]], counts[key])
            yield family

        latency = {_text(k): float(_text(v)) for k, v in raw_latency.items()}
        cumulative, buckets = 0.0, []
        for bound in BUCKETS:
            cumulative += latency.get(f"le:{bound:g}", 0.0)
            buckets.append((f"{bound:g}", cumulative))
        buckets.append(("+Inf", cumulative + latency.get("le:+Inf", 0.0)))
        histogram = HistogramMetricFamily(
            "lamson_delivery_latency_seconds",
            "From the receiver's 250 for a message to the smart host's acceptance of a reply to it.",
            labels=["namespace"])
        histogram.add_metric([ns], buckets, sum_value=latency.get("sum", 0.0))
        yield histogram

        yield from self.gauges()

    def gauges(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        ns = self.names.namespace
        labels = ["namespace", "group"]
        waiting = GaugeMetricFamily("lamson_waiting", "Messages waiting in a worker group's spool (new/).", labels=labels)
        in_flight = GaugeMetricFamily("lamson_in_flight", "Messages claimed by a worker (cur/).", labels=labels)
        oldest = GaugeMetricFamily("lamson_oldest_waiting_seconds",
                                   "Age of the oldest waiting message (since it was accepted or written); 0: none.",
                                   labels=labels)
        now = time.time()
        for group in self.groups():
            try:
                stage = stage_gauge(self.settings, self.conn, group, now)
            except Exception as exc:
                log.warning("metrics: cannot look at the %s spool: %s", group, exc)
                continue
            waiting.add_metric([ns, group], stage.waiting)
            in_flight.add_metric([ns, group], stage.in_flight)
            oldest.add_metric([ns, group], stage.oldest_waiting_age or 0.0)
        yield waiting
        yield in_flight
        yield oldest

        parked = GaugeMetricFamily("lamson_parked", "Messages parked, by folder: undeliverable (incoming) "
                                                    "and bounced (replies).", labels=["namespace", "folder"])
        for folder, path in (("undeliverable", self.settings.undeliverable_dir),
                             ("bounced", self.settings.bounced_dir)):
            parked.add_metric([ns, folder], _count_files(Path(path)))
        yield parked


def exporter_connection(settings: Any) -> Any:
    """The exporter's Redis client: short timeouts, so a scrape or a health probe never hangs on a sick Redis."""
    from lamson import health

    return health.connection(settings, timeout=2.0)


def registry_for(settings: Any, conn: Any = None) -> Any:
    """A prometheus_client registry holding only Lamson's collector for these settings."""
    from prometheus_client import CollectorRegistry

    from lamson.names import names_for

    if conn is None:
        conn = exporter_connection(settings)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(settings, conn, names_for(settings)))
    return registry


def exporter_app(settings: Any, conn: Any = None) -> Any:
    """The exporter's WSGI app: prometheus_client's for ``/metrics``, lamson.health's for ``/health``."""
    from prometheus_client import make_wsgi_app

    from lamson import health
    from lamson.names import names_for

    if conn is None:
        conn = exporter_connection(settings)
    names = names_for(settings)
    return health.wsgi_app(make_wsgi_app(registry_for(settings, conn)), lambda: health.check(conn, names))


def start_server(app: Any, host: str, port: int) -> tuple[Any, threading.Thread]:
    """Serve ``app`` on ``host:port`` (IPv4 or IPv6, as the address says) from a daemon thread.

    prometheus_client's threading WSGI server, with an address family chosen
    from the address, and no line per request on stderr (scrapes every 15 s).
    """
    import socket
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server(str(sockaddr[0]), port, app, server_class=Server, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return server, thread


def serve(settings: Any, host: str = "127.0.0.1", port: int = 9108, stop: threading.Event | None = None, *,
          wait_for_port: bool = False) -> None:
    """Serve /metrics and /health on ``host:port`` until SIGTERM/SIGINT (or ``stop`` is set).

    ``wait_for_port``: while the address is taken (or not there yet), try again
    every few seconds, logging the cause once a minute, instead of raising OSError.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    app = exporter_app(settings)
    last_logged = 0.0
    while True:
        try:
            server, thread = start_server(app, host, port)
            break
        except OSError as exc:
            if not wait_for_port:
                raise
            if time.monotonic() - last_logged >= 60:
                log.error("metrics: cannot listen on %s:%d (%s); trying again", host, port, exc.strerror or exc)
                last_logged = time.monotonic()
            if stop.wait(5.0):
                return
    log.info("metrics for namespace %s on http://%s:%d/metrics (health: /health)", settings.namespace, host, port)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
