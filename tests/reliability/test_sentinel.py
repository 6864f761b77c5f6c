"""Redis failover under load: the stages follow a Redis Sentinel (a redis+sentinel:// redis_url).

A primary and a replica (both requiring a password) and three Sentinels on loopback ports;
the demo application's receiver, two router workers and a relay connect through
``redis+sentinel://:PASSWORD@S1,S2,S3/mymaster/0``. Mail flows, the primary is SIGKILLed,
the Sentinels promote the replica, and every message the receiver answered 250 for is
answered: nothing acknowledged is lost (the spool holds the mail; wake-ups lost with the
old primary are replaced by the sweep; the workers wait for Redis and resume).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
import redis

from lamson import rqcompat
from lamson.connection import connect
from tests.reliability.ledger import Ledger, session
from tests.sink import Sink, smtp_sink
from tests.support import (
    BIN,
    free_port,
    make_project,
    redis_server,
    redis_server_binary,
    spawn,
    stop_process,
    wait_for,
    wait_port,
)

PASSWORD = "s3ntinel-test-pass"
SERVICE = "mymaster"


def answered(sink: Sink) -> set[str]:
    found = set()
    for received in list(sink.messages):
        ref = message_from_bytes(received.data, policy=default).get("In-Reply-To")
        if ref:
            found.add(str(ref))
    return found


def sentinel_conf(directory: Path, port: int, primary_port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "sentinel.conf"
    conf.write_text(f"""port {port}
bind 127.0.0.1
dir {directory}
logfile {directory / 'sentinel.log'}
sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2
sentinel auth-pass {SERVICE} {PASSWORD}
sentinel down-after-milliseconds {SERVICE} 1000
sentinel failover-timeout {SERVICE} 10000
sentinel parallel-syncs {SERVICE} 1
""")
    return conf


@pytest.fixture
def procs() -> Iterator[list[Any]]:
    started: list[Any] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            stop_process(proc)


def test_primary_killed_under_load_nothing_acknowledged_is_lost(tmp_path: Path, procs: list[Any]) -> None:
    began = time.monotonic()
    auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]
    with ExitStack() as stack:
        primary_url, primary = stack.enter_context(redis_server(tmp_path / "primary", extra=auth))
        primary_port = int(primary_url.rsplit(":", 1)[1].split("/")[0])
        replica_url, replica = stack.enter_context(redis_server(
            tmp_path / "replica", extra=auth + ["--replicaof", "127.0.0.1", str(primary_port)]))
        replica_port = int(replica_url.rsplit(":", 1)[1].split("/")[0])
        sentinel_ports = [free_port() for _ in range(3)]
        for i, port in enumerate(sentinel_ports):
            conf = sentinel_conf(tmp_path / f"sentinel{i}", port, primary_port)
            procs.append(spawn([redis_server_binary(), str(conf), "--sentinel"]))
            stack.callback(stop_process, procs[-1])
            wait_port(port)
        sentinels = [redis.Redis(port=p, socket_timeout=2) for p in sentinel_ports]

        def sentinels_ready() -> bool:
            for s in sentinels:
                info = s.sentinel_master(SERVICE)
                if int(info.get("num-other-sentinels", 0)) < 2 or int(info.get("num-slaves", 0)) < 1:
                    return False
            return True

        wait_for(sentinels_ready, 30, 0.2, "three Sentinels that know each other and the replica")

        url = f"redis+sentinel://:{PASSWORD}@" + ",".join(f"127.0.0.1:{p}" for p in sentinel_ports) + f"/{SERVICE}/0"
        sink = stack.enter_context(smtp_sink())
        root = tmp_path / "app"
        project = make_project(root, url, relay_port=sink.port, extra="worker_ttl = 4\nreply_rate_limit = 0\n")
        env = {"LAMSON_ROOT": str(root), "LAMSON_HOSTNAME": "sentinelhost"}
        for program, log in (("receiver", "receiver"), ("worker", "router1"), ("worker", "router2"),
                             ("relay", "relay")):
            procs.append(spawn([str(BIN / "lamson"), program, "-root", str(root)], cwd=root, env=env,
                               log=root / f"{log}.log"))
            stack.callback(stop_process, procs[-1])  # before Redis: a worker waiting for Redis stops slowly
        wait_port(project["receiver_port"])
        conn = connect(url, timeout=2)
        wait_for(lambda: len(rqcompat.registered_workers(conn, "")) >= 3, 30, 0.2, "workers registered")

        ledger = Ledger()
        clients = [threading.Thread(target=session, args=(ledger, project["receiver_port"], c, 60, "sentinel"),
                                    kwargs={"pause": 0.03, "deadline": 90}) for c in range(4)]
        for client in clients:
            client.start()
        wait_for(lambda: len(answered(sink)) >= 40, 60, 0.05, "mail flowing through the primary")
        os.kill(primary.pid, signal.SIGKILL)  # under load
        killed_at = time.monotonic()
        wait_for(lambda: sentinels[0].sentinel_get_master_addr_by_name(SERVICE)[1] == replica_port, 30, 0.1,
                 "the Sentinels to promote the replica")
        failover = time.monotonic() - killed_at
        for client in clients:
            client.join(120)
        accepted = ledger.accepted()
        assert len(accepted) == 240, len(accepted)
        wait_for(lambda: accepted <= answered(sink), 60, 0.2, "a reply to every accepted message")
        took = time.monotonic() - killed_at
        assert conn.info("replication")["role"] == "master"
        assert conn.connection_pool.connection_kwargs.get("port") in (None, replica_port)
        assert replica.poll() is None
        spool = root / "run" / "spool"
        wait_for(lambda: not os.listdir(spool / "new") and not os.listdir(spool / "cur"), 30, 0.2, "an empty spool")
        print(f"\nfailover {failover:.1f} s after the kill; all {len(accepted)} accepted answered {took:.1f} s "
              f"after it ({len(sink.messages)} replies); whole test {time.monotonic() - began:.1f} s")
