"""deploy/multihost/ on three "hosts": network namespaces sharing one checkout (the shared filesystem).

``front`` runs deploy/multihost/front.conf (Redis bound to its address with the password of
run/redis.pass, the receiver, the metrics exporter); ``worker1`` and ``worker2`` run
deploy/multihost/worker.conf (two router workers and a relay each), reaching Redis and the
smart host (a sink in the front namespace) over a bridge inside the front namespace. Each host
has its own supervisord (LAMSON_HOSTNAME, LAMSON_SUPERVISORD_CONF: run/hosts/HOST/) and its
own `lamson status`. Traffic goes through the front host's receiver while every process of
worker2 is SIGKILLed (a whole host): its claims come back, every accepted message is answered,
and the host, started again, takes work again.

Needs root (ip netns). Every namespace is deleted, and every process in it killed, even on failure.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from lamson import rqcompat
from lamson.connection import connect, with_credentials
from tests.reliability.ledger import Ledger, session
from tests.sink import Sink, smtp_sink
from tests.support import BIN, REPO, wait_for


@pytest.fixture(autouse=True)
def _root_and_ip() -> None:
    """Network namespaces need root and `ip` (scripts/setup --test installs iproute2): fail loudly without."""
    assert os.geteuid() == 0, "network namespaces need root: run the suite as root (CI does)"
    assert shutil.which("ip"), "`ip` is missing: bash scripts/setup --test installs iproute2"

SUBNET = "10.231.0"
FRONT_ADDR = f"{SUBNET}.1"
SINK_PORT = 2525
RECEIVER_PORT = 8823
CLONE_NEWNET = 0x40000000
# The test's copy of the demo: takeover in seconds rather than the defaults' half minute.
FAST = "\nworker_ttl = 3\nsweep_interval = 1\nsweep_grace = 1\nreply_rate_limit = 0\n"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def in_netns(name: str, fn: Callable[[], Any]) -> threading.Thread:
    """Run ``fn`` in a thread that has joined the namespace ``name`` (threads it starts inherit it)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def run() -> None:
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {name}")
        finally:
            os.close(fd)
        fn()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class Hosts:
    """The namespaces, their links and what runs in them; ``close`` kills and deletes everything."""

    def __init__(self, root: Path) -> None:
        self.root = root
        tag = f"{os.getpid()}"
        self.ns = {"front": f"lmfront{tag}", "worker1": f"lmw1-{tag}", "worker2": f"lmw2-{tag}"}
        self.addr = {"front": FRONT_ADDR, "worker1": f"{SUBNET}.2", "worker2": f"{SUBNET}.3"}
        self.created: list[str] = []

    def build(self) -> None:
        front = self.ns["front"]
        for name in self.ns.values():
            ip("netns", "add", name)
            self.created.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        ip("-n", front, "link", "add", "br0", "type", "bridge")
        ip("-n", front, "addr", "add", f"{FRONT_ADDR}/24", "dev", "br0")
        ip("-n", front, "link", "set", "br0", "up")
        for host in ("worker1", "worker2"):
            end = f"v{host[-1]}"
            ip("-n", front, "link", "add", end, "type", "veth", "peer", "name", "eth0", "netns", self.ns[host])
            ip("-n", front, "link", "set", end, "master", "br0")
            ip("-n", front, "link", "set", end, "up")
            ip("-n", self.ns[host], "addr", "add", f"{self.addr[host]}/24", "dev", "eth0")
            ip("-n", self.ns[host], "link", "set", "eth0", "up")

    def env(self, host: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("LAMSON_ROOT", "LAMSON_SETTINGS")}
        env.update({
            "PATH": f"{BIN}:{env.get('PATH', '')}",
            "LAMSON_HOSTNAME": host,
            "LAMSON_SUPERVISORD_CONF": f"deploy/multihost/{'front' if host == 'front' else 'worker'}.conf",
            "LAMSON_REDIS_URL": f"redis://{FRONT_ADDR}:6379/0",
            "LAMSON_RECEIVER_HOST": FRONT_ADDR,
            "LAMSON_RECEIVER_PORT": str(RECEIVER_PORT),
            "LAMSON_RELAY_HOST": FRONT_ADDR,
            "LAMSON_RELAY_PORT": str(SINK_PORT),
        })
        return env

    def lamson(self, host: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns[host], str(BIN / "lamson"), *args], cwd=self.root,
                              env=self.env(host), capture_output=True, text=True, timeout=timeout)

    def pids(self, host: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.ns[host]], capture_output=True, text=True, timeout=20)
        return [int(p) for p in out.stdout.split() if p.isdigit()]

    def kill(self, host: str) -> int:
        """SIGKILL every process of the host, until none is left; how many there were."""
        killed: set[int] = set()
        for _ in range(50):
            pids = self.pids(host)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        return len(killed)

    def close(self) -> None:
        for host in self.ns:
            if self.ns[host] in self.created:
                self.kill(host)
        for name in self.created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    # A short path: supervisord's socket path (with its deploy/multihost/../..) must fit AF_UNIX's 107 bytes.
    top = Path(tempfile.mkdtemp(prefix="lmh", dir="/tmp"))
    root = top / "app"
    shutil.copytree(REPO / "deploy", root / "deploy")
    shutil.copytree(REPO / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__", "run", "logs"))
    settings = root / "examples" / "demo" / "config" / "settings.py"
    settings.write_text(settings.read_text() + FAST)
    h = Hosts(root)
    try:
        h.build()
        yield h
    finally:
        h.close()
        shutil.rmtree(top, ignore_errors=True)


def answered(sink: Sink) -> set[str]:
    found = set()
    for received in list(sink.messages):
        ref = message_from_bytes(received.data, policy=default).get("In-Reply-To")
        if ref:
            found.add(str(ref))
    return found


def test_a_whole_worker_host_killed_and_brought_back(hosts: Hosts) -> None:
    began = time.monotonic()
    with ExitStack() as stack:
        sinks: list[Sink] = []
        in_netns(hosts.ns["front"], lambda: sinks.append(stack.enter_context(
            smtp_sink(host=FRONT_ADDR, port=SINK_PORT)))).join(20)
        assert sinks, "the sink did not start in the front namespace"
        sink = sinks[0]
        for host in ("front", "worker1", "worker2"):
            started = hosts.lamson(host, "start", "-wait", "40")
            assert started.returncode == 0, (host, started.stdout, started.stderr)
        for host in ("front", "worker1", "worker2"):
            status = hosts.lamson(host, "status")
            assert status.returncode == 0, (host, status.stdout, status.stderr)
            assert (hosts.root / "run" / "hosts" / host / "supervisord.pid").exists()
        # One shared password, a Redis only the namespace address serves.
        assert (hosts.root / "run" / "redis.pass").exists()
        assert not (hosts.root / "run" / "supervisord.pid").exists()

        ledger = Ledger()
        clients = [in_netns(hosts.ns["front"], lambda c=c: session(  # type: ignore[misc]
            ledger, RECEIVER_PORT, c, 40, "netns", pause=0.05, deadline=60, host=FRONT_ADDR)) for c in range(6)]
        cur = hosts.root / "run" / "spool" / "cur"
        outbox_cur = hosts.root / "run" / "outbox" / "cur"

        def worker2_holds() -> list[str]:
            names = os.listdir(cur) + os.listdir(outbox_cur) if outbox_cur.exists() else os.listdir(cur)
            return [n for n in names if ".worker2." in n]

        held = wait_for(worker2_holds, 40, 0.002, "worker2 holding claims")
        killed = hosts.kill("worker2")
        killed_at = time.monotonic()
        assert killed >= 4, killed  # supervisord, two routers, the relay
        for client in clients:
            client.join(90)
        accepted = ledger.accepted()
        assert len(accepted) == 240, len(accepted)
        wait_for(lambda: accepted <= answered(sink), 60, 0.2, "a reply to every accepted message")
        took = time.monotonic() - killed_at
        # A reply can be in before its message's claim is taken back: the dead host may have written
        # it to the outbox (and the relay sent it) just before the kill. The claim still comes back.
        wait_for(lambda: not [n for n in os.listdir(cur) if ".worker2." in n], 60, 0.2,
                 "worker2's claims taken back")
        assert not any(".worker2." in n for n in held if (cur / n).exists())

        # worker1 noticed: its status still fine; worker2's reports its supervisord down.
        assert hosts.lamson("worker1", "status").returncode == 0
        assert hosts.lamson("worker2", "status").returncode == 3

        # Back: a stale pid file after a crash needs -FORCE; then it takes work again.
        again = hosts.lamson("worker2", "start", "-FORCE", "-wait", "40")
        assert again.returncode == 0, (again.stdout, again.stderr)
        assert hosts.lamson("worker2", "status").returncode == 0
        password_url = with_credentials(f"redis://{FRONT_ADDR}:6379/0", hosts.root / "run")
        names: list[str] = []

        def registered() -> None:
            conn = connect(password_url, timeout=2)
            names.extend(rqcompat.registered_workers(conn, ""))
            conn.close()

        in_netns(hosts.ns["front"], registered).join(20)
        assert any(".worker2." in n for n in names), names
        second = Ledger()
        in_netns(hosts.ns["front"], lambda: session(second, RECEIVER_PORT, 99, 20, "back", deadline=30,
                                                    host=FRONT_ADDR)).join(60)
        assert len(second.accepted()) == 20
        wait_for(lambda: second.accepted() <= answered(sink), 30, 0.2, "replies after the host came back")
        print(f"\nkilled {killed} processes of worker2 holding {len(held)} claims; every one of "
              f"{len(accepted)} answered {took:.1f} s later; whole test {time.monotonic() - began:.1f} s")
