"""Scale-out measured: the same load through 1, 2 and 3 worker hosts sharing one Redis and one spool.

docs/operations.md ("Several hosts") runs a front host (Redis, the receiver, the
metrics exporter: deploy/multihost/front.conf) and worker hosts (two router
workers and a relay each: deploy/multihost/worker.conf) on one shared checkout.
This bench builds those hosts as network namespaces on this machine, the way
tests/reliability/test_netns_hosts.py does (a bridge in the front namespace, a
veth pair per worker host, every host started with ``lamson start`` and its
own ``LAMSON_HOSTNAME``), with Postfix's smtp-sink as the smart host in the
front namespace (writing to tmpfs) and Postfix's smtp-source as the load client
there. For each host count it starts a fresh checkout, sends ``--messages``
over ``--sessions`` sessions, waits for every reply and prints, per message:
the CPU of each host (its supervised programs' process trees), Redis's CPU and
its commands, and the rq jobs each stage ran.

    sudo .venv/bin/python bench/scaleout.py --hosts 1,2,3 --messages 2000 --sessions 10

Every namespace shares this machine's cores, so more worker hosts cannot add
throughput here: what the figures show is what sharing costs (CPU per message
per host, Redis per message, the total against one host), not a speed-up.
Needs root (``ip netns``). Not used by the test suite; nothing is asserted.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pipeline  # noqa: E402 - bench/ is not a package

SUBNET = "10.232.0"  # not the suite's 10.231.0: both may run at once
FRONT_ADDR = f"{SUBNET}.1"
REDIS_PORT = 6379
RECEIVER_PORT = 8823
SINK_PORT = 2525
CLONE_NEWNET = 0x40000000
#: What a one-host load needs (bench/pipeline.py's Config.changes), the same on every host.
LOAD_SETTINGS = ("\nreply_rate_limit = 0\nauth_results = False\nmax_connections = 1000\n"
                 "max_connections_per_ip = 1000\nloop_name = 'bench'\n")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


class Hosts:
    """A front namespace with a bridge and ``workers`` worker namespaces linked to it; ``close`` kills
    every process in them and deletes them."""

    def __init__(self, workers: int) -> None:
        tag = str(os.getpid())
        self.ns = {"front": f"lsfront{tag}", **{f"worker{i}": f"lsw{i}-{tag}" for i in range(1, workers + 1)}}
        self.addr = {"front": FRONT_ADDR, **{f"worker{i}": f"{SUBNET}.{i + 1}" for i in range(1, workers + 1)}}
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
        for host, name in self.ns.items():
            if host == "front":
                continue
            end = f"v{host.removeprefix('worker')}"
            ip("-n", front, "link", "add", end, "type", "veth", "peer", "name", "eth0", "netns", name)
            ip("-n", front, "link", "set", end, "master", "br0")
            ip("-n", front, "link", "set", end, "up")
            ip("-n", name, "addr", "add", f"{self.addr[host]}/24", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")

    def enter_front(self) -> None:
        """Move this thread (the main one: the load client, the sink and the Redis client start from it)
        into the front namespace, as if the bench ran on the front host."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.ns['front']}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns front")
        finally:
            os.close(fd)

    def pids(self, host: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.ns[host]], capture_output=True, text=True, timeout=20)
        return [int(p) for p in out.stdout.split() if p.isdigit()]

    def kill(self, host: str) -> None:
        for _ in range(50):
            pids = [p for p in self.pids(host) if p != os.getpid()]
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def close(self) -> None:
        for host in self.ns:
            if self.ns[host] in self.created and host != "front":
                self.kill(host)
        for name in self.created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


def env_for(host: str) -> dict[str, str]:
    """The environment docs/operations.md gives each host, with the receiver on every front address
    (the load client runs in the front namespace) and the sink in the front namespace as smart host."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LAMSON_ROOT", "LAMSON_SETTINGS", "LAMSON_LOG_LEVEL")}
    env.update({
        "PATH": f"{pipeline.BIN}:{env.get('PATH', '')}",
        "LAMSON_HOSTNAME": host,
        "LAMSON_SUPERVISORD_CONF": f"deploy/multihost/{'front' if host == 'front' else 'worker'}.conf",
        "LAMSON_REDIS_URL": f"redis://{FRONT_ADDR}:{REDIS_PORT}/0",
        "LAMSON_RECEIVER_HOST": "0.0.0.0",
        "LAMSON_RECEIVER_PORT": str(RECEIVER_PORT),
        "LAMSON_RELAY_HOST": FRONT_ADDR,
        "LAMSON_RELAY_PORT": str(SINK_PORT),
    })
    return env


def lamson(hosts: Hosts, root: Path, host: str, *args: str) -> None:
    done = subprocess.run(["ip", "netns", "exec", hosts.ns[host], str(pipeline.BIN / "lamson"), *args], cwd=root,
                          env=env_for(host), capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and args[0] != "stop":
        raise SystemExit(f"lamson {' '.join(args)} on {host}: {done.stdout}{done.stderr}")


def programs(root: Path, host: str) -> dict[str, int]:
    """"host/program" -> pid of the host's supervised programs and its supervisord (over its unix socket,
    which a namespace does not hide)."""
    conf = root / env_for(host)["LAMSON_SUPERVISORD_CONF"]
    out = subprocess.run([str(pipeline.BIN / "supervisorctl"), "-c", str(conf), "status"], env=env_for(host),
                         capture_output=True, text=True, timeout=30).stdout
    pids = {}
    for line in out.splitlines():
        m = re.match(r"(\S+)\s+RUNNING\s+pid (\d+)", line)
        if m:
            pids[f"{host}/{m.group(1).split(':')[-1]}"] = int(m.group(2))
    pids[f"{host}/supervisord"] = int((root / "run" / "hosts" / host / "supervisord.pid").read_text())
    return pids


def start_sink(folder: Path, pidfile: Path) -> subprocess.Popen[bytes]:
    """smtp-sink on the front address (the worker hosts' smart host), one file per reply in ``folder``/new."""
    (folder / "new").mkdir(parents=True, exist_ok=True)
    os.chmod(folder / "new", 0o777)  # it writes as nobody
    os.chmod(folder, 0o755)
    proc = subprocess.Popen([str(pipeline.postfix_tools() / "smtp-sink"), "-u", "nobody", "-d",
                             f"{folder}/new/%H%M%S.", f"{FRONT_ADDR}:{SINK_PORT}", "256"], start_new_session=True)
    pidfile.write_text(str(proc.pid))
    return proc


def point(hosts: Hosts, workers: int, args: argparse.Namespace) -> pipeline.Load:
    """Front plus ``workers`` worker hosts on a fresh checkout; one load; everything stopped afterwards."""
    # A short path: supervisord's socket path (with its deploy/multihost/../..) must fit AF_UNIX's 107 bytes.
    top = Path(tempfile.mkdtemp(prefix="lms", dir="/tmp"))
    root = top / "app"
    sink_dir = Path(tempfile.mkdtemp(prefix="lamson-scaleout-sink-", dir=pipeline.TMPFS))
    shutil.copytree(pipeline.REPO / "deploy", root / "deploy")
    shutil.copytree(pipeline.REPO / "examples", root / "examples",
                    ignore=shutil.ignore_patterns("__pycache__", "run", "logs"))
    settings = root / "examples" / "demo" / "config" / "settings.py"
    settings.write_text(settings.read_text() + LOAD_SETTINGS)
    names = ["front", *(f"worker{i}" for i in range(1, workers + 1))]
    sink_pid = root / "sink.pid"
    disk = pipeline.settle_disk(top)[0]
    try:
        start_sink(sink_dir, sink_pid)
        for host in names:
            lamson(hosts, root, host, "start", "-wait", "60")
        pipeline.wait_port(RECEIVER_PORT)
        time.sleep(2)  # workers import the application
        pids: dict[str, int] = {"sink": int(sink_pid.read_text())}
        for host in names:
            pids.update(programs(root, host))
        env = env_for("front")
        url = subprocess.run([str(pipeline.BIN / "lamson"), "redis-url"], cwd=root, env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        import redis

        conn = redis.Redis.from_url(url)
        load = pipeline.run_load(RECEIVER_PORT, sink_dir, pids, messages=args.messages, sessions=args.sessions,
                                 size=args.size, senders=args.senders, client="smtp-source", timeout=args.timeout,
                                 redis_conn=conn)
        conn.close()
        load.config = (f"deploy/multihost: front (redis, receiver, metrics) + {workers} worker host(s) "
                       f"(2 routers, relay each), INFO logs; " + LOAD_SETTINGS.strip().replace("\n", "; "))
        load.disk_us = disk
        return load
    finally:
        for host in reversed(names):
            lamson(hosts, root, host, "stop")
        for host in names:
            if host != "front":
                hosts.kill(host)
        pipeline.kill_sink(sink_pid)
        shutil.rmtree(sink_dir, ignore_errors=True)
        SCRATCH.append(top)


#: Scratch checkouts, deleted when the run ends (README, "A measuring pitfall").
SCRATCH: list[Path] = []


def host_ms(load: pipeline.Load, host: str) -> float:
    """CPU ms per message of one host's programs (supervisord included)."""
    return sum(load.cpu_ms(name) for name in load.cpu if name.startswith(f"{host}/"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="1,2,3", help="worker host counts, comma-separated")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--senders", type=int, default=100)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--rounds", type=int, default=1, help="times through the host counts (alternating)")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise SystemExit("bench/scaleout.py needs root and `ip` (network namespaces)")
    pipeline.terminate_cleanly()
    counts = [int(n) for n in args.hosts.split(",")]
    hosts = Hosts(max(counts))
    loads: list[tuple[int, pipeline.Load]] = []
    try:
        hosts.build()
        hosts.enter_front()
        for round_ in range(args.rounds):
            for workers in counts:
                load = point(hosts, workers, args)
                loads.append((workers, load))
                print(f"round {round_ + 1}, {workers} worker host(s): {load.replies}/{load.messages} replies, "
                      f"{load.rate:.0f} msg/s, {load.ours_ms():.2f} ms CPU/msg, other work "
                      f"{100 * max(0.0, load.machine[0] - sum(load.cpu.values()) - load.client_cpu) / max(1e-9, load.machine[1]):.0f} %",
                      flush=True)
    finally:
        hosts.close()
        for top in SCRATCH:
            shutil.rmtree(top, ignore_errors=True)
    report(loads, args)


def report(loads: list[tuple[int, pipeline.Load]], args: argparse.Namespace) -> None:
    print(f"\n{args.messages} messages of ~{args.size} B per point, {args.sessions} sessions (smtp-source), "
          f"{args.senders} senders; {os.cpu_count()} cores shared by every namespace; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(loads[0][1].config.split(";")[0].replace(" + 1 worker host(s)", " + N worker hosts") + "\n")
    most = max(n for n, _ in loads)
    header = ["worker hosts", "taken", "msg/s", "ours CPU ms/msg", "front (receiver, redis, metrics)",
              *(f"worker{i}" for i in range(1, most + 1)), "of it Redis", "Redis cmds/msg",
              "routing jobs (msgs each)", "other work"]
    rows = [header]
    for workers, load in loads:
        jobs = load.jobs.get("routing", 0)
        busy, total = load.machine
        other = max(0.0, busy - sum(load.cpu.values()) - load.client_cpu) / total if total else 0.0
        rows.append([str(workers), load.when[11:16], f"{load.rate:.0f}" if load.replies >= load.messages
                     else f"{load.replies}/{load.messages} replies", f"{load.ours_ms():.2f}", f"{host_ms(load, 'front'):.2f}",
                     *(f"{host_ms(load, f'worker{i}'):.2f}" if i <= workers else "–" for i in range(1, most + 1)),
                     f"{load.cpu_ms('front/redis'):.2f}", f"{sum(load.redis.values()) / max(1, load.replies):.1f}",
                     f"{jobs} ({load.replies / jobs:.0f})" if jobs else "–", f"{100 * other:.0f} %"])
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows[1:]:
        print("| " + " | ".join(row) + " |")
    print("\nRedis commands per message by command, per host count (last round):")
    for workers, load in loads[-len({n for n, _ in loads}):]:
        top = sorted(load.redis.items(), key=lambda kv: -kv[1])[:8]
        print(f"  {workers}: " + ", ".join(f"{k} {v / max(1, load.replies):.2f}" for k, v in top))


if __name__ == "__main__":
    main()
