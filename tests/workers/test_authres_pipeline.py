"""Sender authentication through the routing job (in-process, as tests/workers/test_lifecycle.py):
results computed once per message, read by handlers, DMARC p=reject parked when asked, DNS trouble
never blocking mail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from lamson import authres
from lamson.envelope import Envelope
from lamson.runtime import Runtime
from lamson.workers import jobs
from tests.dnsserver import dns_server
from tests.shared.test_authres import ZONE, message, signed
from tests.support import router_runtime
from tests.workers import authres_handlers as handlers

PEER = "192.0.2.10:40001"


@pytest.fixture
def server() -> Iterator[Any]:
    with dns_server(ZONE) as s:
        yield s


@pytest.fixture
def ctx(tmp_path: Path, redis_conn: redis.Redis, server: Any) -> Iterator[Runtime]:
    handlers.SEEN.clear()
    with router_runtime(tmp_path, redis_conn, ["tests.workers.authres_handlers"], namespace="ta",
                        worker_id="ta.router.h.1.me", dns_config=server.config,
                        authserv_id="mx.test.com") as runtime:
        yield runtime


def configure(c: Runtime, **changes: Any) -> None:
    """Other settings for the worker (a worker reads them once, at start: lamson.runtime)."""
    c.configure(replace(c.config, **changes))


def accept(c: Runtime, data: bytes, sender: str = "alice@example.org", peer: str = PEER,
           rcpts: tuple[str, ...] = ("bot@test.com",)) -> str:
    key = c.spool().put(Envelope(sender, rcpts, peer=peer, helo="client.example.org"), data)
    c.lines().add([(key, sender)])
    return key


def parked(c: Runtime) -> list[bytes]:
    folder = Path(c.settings.undeliverable_dir) / "new"
    return [p.read_bytes() for p in folder.iterdir()] if folder.exists() else []


def test_handlers_read_message_auth_and_the_header_once_per_message(ctx: Runtime,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = authres.check
    monkeypatch.setattr(authres, "check", lambda *a, **k: calls.append(1) or real(*a, **k))
    forged = "Authentication-Results: mx.test.com; dmarc=pass header.from=example.org\r\n"
    key = accept(ctx, signed(message(extra=forged)), rcpts=("a@test.com", "b@test.com"))
    assert jobs.route(ctx, [key]) == "1 routed"
    assert len(calls) == 1  # both recipients share one computation
    assert [s["to"] for s in handlers.SEEN] == ["a@test.com", "b@test.com"]
    for seen in handlers.SEEN:
        assert (seen["spf"], seen["dkim"], seen["dmarc"]) == ("pass", "pass", "pass")
        assert seen["first"] == "Authentication-Results"
        (header,) = seen["headers"]  # ours only: the forged one is gone
        assert isinstance(header, str) and header.startswith("mx.test.com;") and "dkim=pass" in header


def test_dmarc_reject_is_parked_only_when_asked(ctx: Runtime) -> None:
    spoofed = message()  # From example.org (p=reject), sent from an IP outside its SPF, unsigned
    key = accept(ctx, spoofed, peer="203.0.113.5:25")
    assert jobs.route(ctx, [key]) == "1 routed"
    assert handlers.SEEN[0]["dmarc"] == "fail" and parked(ctx) == []
    configure(ctx, dmarc_reject_park=True)  # settings are read once, when the worker starts
    key = accept(ctx, spoofed, peer="203.0.113.5:25")
    assert jobs.route(ctx, [key]) == "1 parked"
    assert len(handlers.SEEN) == 1
    (kept,) = parked(ctx)
    assert b"DMARC fail for example.org, whose policy is p=reject" in kept
    ok = accept(ctx, message(), peer=PEER)  # SPF passes and aligns: routed
    assert jobs.route(ctx, [ok]) == "1 routed" and handlers.SEEN[-1]["dmarc"] == "pass"


def test_a_dns_server_that_hangs_gives_temperror_and_the_mail_is_routed(ctx: Runtime, server: Any) -> None:
    server.hang = True
    configure(ctx, dns_config={**server.config, "timeout": 0.3}, auth_timeout=1.0, dmarc_reject_park=True)
    keys = [accept(ctx, message(), sender=f"s{i}@example.org") for i in range(3)]
    started = time.monotonic()
    assert jobs.route(ctx, keys) == "3 routed"
    assert time.monotonic() - started < 3.0
    assert [(s["spf"], s["dmarc"]) for s in handlers.SEEN] == [("temperror", "temperror")] * 3


def test_auth_results_off(ctx: Runtime) -> None:
    configure(ctx, auth_results=False)
    key = accept(ctx, message(extra="Authentication-Results: mx.test.com; spf=pass\r\n"))
    assert jobs.route(ctx, [key]) == "1 routed"
    assert handlers.SEEN[0]["auth"] is None and handlers.SEEN[0]["first"] == "From"
