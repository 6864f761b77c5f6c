"""Metrics (issue 14 item 5) with real processes: counters move as mail flows, the exporter serves them.

Receiver, router worker and relay run as ``lamson`` processes against the
private Redis with an aiosmtpd sink as smart host (the helpers of
test_lifecycle_pipeline.py); ``lamson metrics`` serves what they counted on a
free port, scraped over HTTP and parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import smtplib
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from lamson import maildir
from lamson.envelope import Envelope
from lamson.spool import MaildirSpool
from tests.reliability.test_lifecycle_pipeline import App, make_app
from tests.sink import smtp_sink
from tests.support import free_port, wait_for, wait_port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample the exporter serves: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def start_exporter(app: App) -> int:
    port = free_port()
    app.start("metrics", "-port", str(port))
    wait_port(port, timeout=30)
    return port


def test_counters_move_as_mail_flows_and_the_exporter_serves_them(tmp_path: Path, redis_url: str,
                                                                   redis_conn: redis.Redis,
                                                                   apps: list[App]) -> None:
    with smtp_sink() as sink:
        app = make_app(tmp_path, "metered", redis_url, sink)
        apps.append(app)
        app.start("receiver")
        app.start("worker")
        app.start("relay")
        port = start_exporter(app)
        wait_port(app.project["receiver_port"], timeout=30)

        with smtplib.SMTP("127.0.0.1", app.project["receiver_port"], timeout=30) as smtp:
            refused = smtp.sendmail("a@example.org", ["x@test.com", "y@elsewhere.example"],
                                    "From: a@example.org\r\nTo: x@test.com\r\nSubject: first\r\n\r\nhi\r\n")
            assert list(refused) == ["y@elsewhere.example"]  # 550 5.7.1 for a domain not served
            for n in range(2):
                app.send(f"s{n}@example.org", f"r{n}@test.com", f"more {n}", smtp)
        wait_for(lambda: len(sink.messages) >= 3, 60, 0.1, "three replies at the smart host")

        ns = (("namespace", "metered"),)

        def settled() -> bool:
            got = scrape(port)
            return (value(got, "lamson_accepted_total", namespace="metered") == 3
                    and value(got, "lamson_relayed_total", namespace="metered") == 3)

        wait_for(settled, 30, 0.2, "accepted and relayed counted")
        got = scrape(port)
        assert got[("lamson_redis_up", ns)] == 1
        assert value(got, "lamson_refused_total", namespace="metered", reason="relaying_denied") == 1
        assert value(got, "lamson_routed_total", namespace="metered", group="incoming") == 3
        assert value(got, "lamson_parked_total", namespace="metered", group="incoming") == 0
        assert value(got, "lamson_delivery_latency_seconds_count", namespace="metered") == 3
        total = value(got, "lamson_delivery_latency_seconds_sum", namespace="metered")
        assert 0 < total < 60 * 3
        assert value(got, "lamson_delivery_latency_seconds_bucket", namespace="metered", le="+Inf") == 3
        # Nothing waits once it is all delivered.
        assert value(got, "lamson_waiting", namespace="metered", group="incoming") == 0
        assert value(got, "lamson_in_flight", namespace="metered", group="outgoing") == 0

        # The counters are in Redis under the namespace, where every host's stages add to them.
        assert redis_conn.hget("metered:metrics:counters", "accepted") == b"3"
        # The relay carried the original accept time: the reply's own outbox time is later.
        assert int(redis_conn.hget("metered:metrics:latency", "count") or 0) == 3


def test_a_broken_counter_key_never_stops_mail(tmp_path: Path, redis_url: str, redis_conn: redis.Redis,
                                               apps: list[App]) -> None:
    """Someone wrote a string where the counters hash lives: every increment fails, mail flows on time."""
    redis_conn.set("poisoned:metrics:counters", "not a hash")
    redis_conn.set("poisoned:metrics:latency", "not a hash")
    with smtp_sink() as sink:
        app = make_app(tmp_path, "poisoned", redis_url, sink, extra="sweep_grace = 60\nsweep_interval = 60\n")
        apps.append(app)
        app.start("receiver")
        app.start("worker")
        app.start("relay")
        wait_port(app.project["receiver_port"], timeout=30)
        started = time.monotonic()
        for n in range(5):
            app.send(f"p{n}@example.org", f"q{n}@test.com", f"poisoned {n}")
        # With the sweeper 60 s away, only the wake-ups can have delivered these.
        wait_for(lambda: len(sink.messages) >= 5, 40, 0.1, "five replies despite failing counters")
        assert time.monotonic() - started < 40
    assert redis_conn.get("poisoned:metrics:counters") == b"not a hash"


def test_gauges_reflect_waiting_in_flight_and_parked_mail(tmp_path: Path, redis_url: str,
                                                          redis_conn: redis.Redis, apps: list[App]) -> None:
    with smtp_sink() as sink:
        app = make_app(tmp_path, "gauged", redis_url, sink)
        apps.append(app)
        spool = MaildirSpool(app.root / "run" / "spool")
        spool.put(Envelope("old@example.org", ("a@test.com",), received_at=time.time()), b"Subject: x\r\n\r\nx\r\n")
        time.sleep(1.1)
        spool.put(Envelope("new@example.org", ("b@test.com",)), b"Subject: y\r\n\r\ny\r\n")
        claimed_key = spool.waiting()[-1]
        assert spool.claim(claimed_key, "gauged.router.elsewhere.1.x") is not None
        parked = maildir.ensure(app.root / "run" / "undeliverable")
        maildir.write(parked, b"X-Lamson-Reason: test\r\n\r\nparked\r\n")
        port = start_exporter(app)  # no router, no relay: nothing moves
        got = scrape(port)
        assert value(got, "lamson_waiting", namespace="gauged", group="incoming") == 1
        assert value(got, "lamson_in_flight", namespace="gauged", group="incoming") == 1
        assert value(got, "lamson_waiting", namespace="gauged", group="outgoing") == 0
        oldest = value(got, "lamson_oldest_waiting_seconds", namespace="gauged", group="incoming")
        assert 1.0 <= oldest < 60, oldest
        assert value(got, "lamson_parked", namespace="gauged", folder="undeliverable") == 1
        assert value(got, "lamson_parked", namespace="gauged", folder="bounced") == 0
        assert value(got, "lamson_accepted_total", namespace="gauged") == 0


def test_the_exporter_answers_while_redis_is_away(tmp_path: Path, apps: list[App]) -> None:
    with smtp_sink() as sink:
        app = make_app(tmp_path, "noredis", f"redis://127.0.0.1:{free_port()}/0", sink)
        apps.append(app)
        port = start_exporter(app)
        started = time.monotonic()
        got = scrape(port)
        assert time.monotonic() - started < 8
        assert value(got, "lamson_redis_up", namespace="noredis") == 0
        assert value(got, "lamson_waiting", namespace="noredis", group="incoming") == 0


@pytest.mark.parametrize("wait", [False, True])
def test_a_taken_port(tmp_path: Path, redis_url: str, apps: list[App], wait: bool) -> None:
    import socket

    with smtp_sink() as sink, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        app = make_app(tmp_path, "taken", redis_url, sink)
        apps.append(app)
        proc = app.start("metrics", "-port", str(port), *(["-wait-for-port"] if wait else []))
        if not wait:
            assert proc.wait(30) == 1
            assert b"cannot listen on 127.0.0.1:" in (app.root / "metrics.log").read_bytes()
            return
        time.sleep(2)
        assert proc.poll() is None  # still there, trying again (supervisord keeps it RUNNING)
        taken.close()

        def serving() -> bool:
            try:
                return bool(scrape(port))
            except OSError:
                return False

        wait_for(serving, 30, 0.5, "serving once the port is free")
