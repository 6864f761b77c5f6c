"""Delivery by MX against a loopback DNS server (tests/dnsserver.py) and aiosmtpd sinks on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from lamson.relay import mx
from tests.dnsserver import Server, dns_server
from tests.relaykit import RelayKit
from tests.sink import Sink, smtp_sink
from tests.support import free_port

MESSAGE = b"From: app@test.com\r\nTo: one@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def sink() -> Iterator[Sink]:
    with smtp_sink() as s:
        yield s


@pytest.fixture
def dns() -> Iterator[Server]:
    with dns_server() as server:
        yield server


def zone(text: str) -> str:
    """Zone-file lines start at the owner name (a leading blank means "the same owner")."""
    return "\n".join(line.strip() for line in text.strip().splitlines())


def make_kit(tmp_path: Path, conn: redis.Redis, dns: Server, port: int, **settings: Any) -> RelayKit:
    settings.setdefault("dns_config", dns.config)
    return RelayKit(tmp_path, conn, relay_config={"host": "127.0.0.1", "port": 8825, "mx": True, "mx_port": port},
                    **settings)


def test_preference_order_first_host_down_then_the_second(tmp_path: Path, redis_conn: redis.Redis, dns: Server,
                                                           sink: Sink) -> None:
    dns.zone = zone("""
        example.org.      300 IN MX 20 mx2.example.org.
        example.org.      300 IN MX 10 mx1.example.org.
        mx1.example.org.  300 IN A  127.0.0.2
        mx2.example.org.  300 IN A  127.0.0.1
    """)  # the sink listens on 127.0.0.1 only: mx1 (preferred) refuses the connection
    kit = make_kit(tmp_path, redis_conn, dns, sink.port)
    try:
        assert [h for h, _ in mx.lookup(_resolver(kit), "example.org")] == \
            ["mx1.example.org", "mx2.example.org"]
        kit.relay().deliver(MESSAGE)
        kit.work_until(lambda: len(sink.messages) == 1)
    finally:
        kit.close()
    assert sink.messages[0].rcpt_tos == ["one@example.org"]
    assert kit.outbox.waiting() == [] and kit.bounced() == []


def _resolver(kit: RelayKit) -> Any:
    from lamson import dns as ldns

    return ldns.resolver(kit.settings)


def test_no_mx_falls_back_to_the_address(tmp_path: Path, redis_conn: redis.Redis, dns: Server, sink: Sink) -> None:
    dns.zone = zone("example.org. 300 IN A 127.0.0.1")
    kit = make_kit(tmp_path, redis_conn, dns, sink.port)
    try:
        kit.relay().deliver(MESSAGE)
        kit.work_until(lambda: len(sink.messages) == 1)
    finally:
        kit.close()


def test_recipients_are_split_per_domain_and_one_session_per_host(tmp_path: Path, redis_conn: redis.Redis,
                                                                  dns: Server, sink: Sink) -> None:
    dns.zone = zone("""
        example.org.  300 IN MX 10 mx.example.org.
        mx.example.org. 300 IN A 127.0.0.1
        example.net.  300 IN A 127.0.0.1
    """)
    kit = make_kit(tmp_path, redis_conn, dns, sink.port)
    try:
        kit.relay().deliver(MESSAGE, To=["a@example.org", "b@example.net", "c@example.org"])
        kit.work_until(lambda: len(sink.messages) == 2 and not kit.outbox.waiting())
        kit.relay().deliver(MESSAGE, To=["d@example.org"])
        kit.work_until(lambda: len(sink.messages) == 3)
    finally:
        kit.close()
    assert sorted(m.rcpt_tos for m in sink.messages) == [["a@example.org", "c@example.org"], ["b@example.net"],
                                                        ["d@example.org"]]
    assert sink.connections == 2  # one per destination host, kept: mx.example.org and example.net


def test_null_mx_is_a_notification(tmp_path: Path, redis_conn: redis.Redis, dns: Server, sink: Sink,
                                   caplog: pytest.LogCaptureFixture) -> None:
    dns.zone = zone("""
        example.org.  300 IN MX 0 .
        test.com.     300 IN A  127.0.0.1
    """)
    kit = make_kit(tmp_path, redis_conn, dns, sink.port)
    try:
        with caplog.at_level(logging.INFO):
            kit.relay().deliver(MESSAGE)
            kit.work_until(lambda: len(kit.bounced()) == 1 and len(sink.messages) == 1)
    finally:
        kit.close()
    (dsn,) = sink.messages  # the notification, delivered by MX to the sender's domain
    assert dsn.mail_from in ("", "<>") and dsn.rcpt_tos == ["app@test.com"]
    assert b"5.1.10" in dsn.data and b"null MX" in dsn.data
    assert "null MX" in caplog.text


@pytest.mark.parametrize("records", ["", "example.org. 300 IN TXT \"v=spf1 -all\""],
                         ids=["nxdomain", "no-mx-no-address"])
def test_a_domain_that_takes_no_mail_is_a_notification(tmp_path: Path, redis_conn: redis.Redis, dns: Server,
                                                        sink: Sink, records: str) -> None:
    dns.zone = zone(records + "\n test.com. 300 IN A 127.0.0.1")
    kit = make_kit(tmp_path, redis_conn, dns, sink.port)
    try:
        kit.relay().deliver(MESSAGE)
        kit.work_until(lambda: len(kit.bounced()) == 1 and len(sink.messages) == 1)
    finally:
        kit.close()
    assert sink.messages[0].rcpt_tos == ["app@test.com"] and b"5.1.2" in sink.messages[0].data


def test_dns_timeout_is_retried_later(tmp_path: Path, redis_conn: redis.Redis, sink: Sink,
                                      caplog: pytest.LogCaptureFixture) -> None:
    with dns_server("example.org. 300 IN A 127.0.0.1") as dns:
        dns.hang = True
        kit = make_kit(tmp_path, redis_conn, dns, sink.port, relay_retries=[1],
                       dns_config={**dns.config, "timeout": 0.5})
        try:
            with caplog.at_level(logging.INFO):
                key = kit.relay().deliver(MESSAGE)
                kit.work()
                assert kit.outbox.waiting() == [key] and sink.messages == [] and kit.bounced() == []
                assert "4.4.3" in caplog.text
                dns.hang = False
                kit.work_until(lambda: len(sink.messages) == 1)
        finally:
            kit.close()


def test_all_hosts_down_is_retried(tmp_path: Path, redis_conn: redis.Redis, dns: Server) -> None:
    dns.zone = zone("example.org. 300 IN MX 10 mx.example.org.\n mx.example.org. 300 IN A 127.0.0.1")
    kit = make_kit(tmp_path, redis_conn, dns, free_port(), relay_retries=[3600])
    try:
        key = kit.relay().deliver(MESSAGE)
        kit.work()
    finally:
        kit.close()
    assert kit.outbox.waiting() == [key] and kit.bounced() == []


def test_per_domain_concurrency_limit(tmp_path: Path, redis_conn: redis.Redis, dns: Server, sink: Sink) -> None:
    dns.zone = zone("example.org. 300 IN A 127.0.0.1")
    kit = make_kit(tmp_path, redis_conn, dns, sink.port, relay_domain_concurrency=1, relay_retries=[1])
    try:
        sender = mx.MXSender(kit.ctx.smtp, kit.settings, kit.conn, kit.ctx.names)
        assert sender.acquire("example.org")  # another relay worker is delivering to example.org
        key = kit.relay().deliver(MESSAGE)
        kit.work()
        assert kit.outbox.waiting() == [key] and sink.messages == []  # over the limit: later
        sender.release("example.org")
        kit.work_until(lambda: len(sink.messages) == 1)
    finally:
        kit.close()
