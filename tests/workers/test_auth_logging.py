"""How a router worker logs sender authentication when DNS is missing or failing (issue 19, item 7).

No DNS at all (a laptop offline, a sandbox): a real ``lamson worker`` runs in
a network namespace of its own with no interface up (so no route to any name
server), reaching Redis over a Unix socket, and routes a message the real
receiver accepted; its result line is logged at DEBUG level, short, and never
at INFO. A DNS server that exists but fails (one that stops answering) is
still news: INFO, with a short reason.

Network namespaces need root, as in tests/reliability/test_netns_hosts.py (CI runs the suite as root).
"""

from __future__ import annotations

import logging
import os
import shutil
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lamson.envelope import Envelope
from lamson.workers import jobs
from tests.dnsserver import dns_server
from tests.shared.test_authres import ZONE, message
from tests.support import (
    BIN,
    make_project,
    redis_server,
    router_runtime,
    spawn,
    stop_process,
    wait_for,
    wait_port,
)

#: A name server address (TEST-NET-1) the isolated worker has no route to.
NAMESERVER = "192.0.2.53"


@pytest.fixture
def unix_redis(tmp_path: Path) -> Iterator[str]:
    """A private redis-server also listening on a Unix socket, which crosses network namespaces."""
    socket_path = tmp_path / "redis" / "redis.sock"
    with redis_server(tmp_path / "redis", extra=["--unixsocket", str(socket_path), "--unixsocketperm", "700"]):
        yield f"unix://{socket_path}?db=0"


def test_no_dns_at_all_is_logged_at_debug_not_per_message_at_info(tmp_path: Path, unix_redis: str) -> None:
    assert os.geteuid() == 0, "a network namespace needs root: run the suite as root (CI does)"
    assert shutil.which("unshare"), "`unshare` (util-linux) is missing"
    root = tmp_path / "app"
    project = make_project(root, unix_redis, extra=f"namespace = 'nodns'\nauth_results = True\n"
                                                   f"dns_config = {{'nameservers': ['{NAMESERVER}'], 'timeout': 2.0}}\n")
    env = {"LAMSON_ROOT": str(root), "LAMSON_AUTH_RESULTS": "1", "LAMSON_LOG_LEVEL": "DEBUG"}
    procs = []
    try:
        procs.append(spawn([str(BIN / "lamson"), "receiver", "-root", str(root)], cwd=root, env=env,
                           log=root / "receiver.log"))
        # The worker alone has no network: a namespace of its own, no interface up.
        procs.append(spawn(["unshare", "--net", str(BIN / "lamson"), "worker", "-root", str(root)], cwd=root,
                           env=env, log=root / "worker.log"))
        wait_port(project["receiver_port"], timeout=60)
        with smtplib.SMTP("127.0.0.1", project["receiver_port"], timeout=30) as smtp:
            smtp.sendmail("alice@example.org", ["hello@test.com"],
                          "From: alice@example.org\r\nTo: hello@test.com\r\nSubject: offline\r\n\r\nhi\r\n")

        def worker_log() -> str:
            return (root / "worker.log").read_text(errors="replace")

        wait_for(lambda: "routed to 1 recipient(s)" in worker_log(), 60, 0.1, "the message routed")
    finally:
        for proc in procs:
            stop_process(proc)
    auth = [line for line in worker_log().splitlines() if " dmarc=" in line]
    assert len(auth) == 1, worker_log()
    assert " lamson.workers DEBUG " in auth[0], auth[0]
    assert "dmarc=temperror (DMARC: no DNS (192.0.2.53@53: Network is unreachable))" in auth[0], auth[0]
    assert not [line for line in worker_log().splitlines() if " INFO " in line and "temperror" in line]


@pytest.fixture
def hanging_dns() -> Iterator[object]:
    with dns_server(ZONE) as server:
        server.hang = True  # it exists, and stops answering
        yield server


def test_a_dns_server_that_fails_is_still_logged_at_info_in_a_short_line(
        tmp_path: Path, redis_conn: redis.Redis, hanging_dns: object, caplog: pytest.LogCaptureFixture) -> None:
    dns = {**hanging_dns.config, "timeout": 0.5}  # type: ignore[attr-defined]
    with router_runtime(tmp_path, redis_conn, ["tests.workers.authres_handlers"], namespace="tl",
                        worker_id="tl.router.h.1.me", dns_config=dns, auth_timeout=1.0,
                        authserv_id="mx.test.com") as ctx:
        key = ctx.spool().put(Envelope("alice@example.org", ("bot@test.com",), peer="192.0.2.10:40001",
                                       helo="client.example.org"), message())
        ctx.lines().add([(key, "alice@example.org")])
        with caplog.at_level(logging.INFO, logger="lamson.workers"):
            assert jobs.route(ctx, [key]) == "1 routed"
    (line,) = [r for r in caplog.records if " dmarc=" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert "dmarc=temperror (DMARC: DNS " in line.getMessage()  # a timeout, or the servers left alone after one
    assert len(line.getMessage()) < 160, line.getMessage()
