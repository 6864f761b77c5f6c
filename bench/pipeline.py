"""Benchmark the whole pipeline: N messages over C concurrent SMTP sessions.

It starts the real ``deploy/supervisord.conf`` in a scratch copy of the
repository layout on free ports (its own Redis, receiver, router workers,
relay, logging server), sends the messages with smtplib, and waits until
every reply has arrived in the logging server's Maildir. It prints:

* accept rate: messages per second acknowledged with 250 by the receiver;
* end-to-end rate: replies arrived at the sink per second, first send to last reply;
* latency p50/p99: from a message's 250 to its reply's file in run/queue.

    .venv/bin/python bench/pipeline.py --messages 2000 --sessions 10 --routers 2

Nothing is asserted: the figures are for the README.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {timeout}s")


def start(root: Path, routers: int, sink: str = "log", auth: bool = False) -> tuple[dict[str, str], dict[str, int]]:
    shutil.copytree(REPO / "deploy", root / "deploy")
    shutil.copytree(REPO / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    conf = root / "deploy" / "supervisord.conf"
    text = conf.read_text().replace("numprocs=2", f"numprocs={routers}")
    if sink == "smtp-sink":
        # Postfix's smtp-sink (C) as the smart host instead of the Python logging server.
        text = text.split("[program:log]")[0]
    conf.write_text(text)
    # A benchmark sends hundreds of messages a second from a few addresses: lift the per-address
    # reply rate limit (a loop guard, docs/security.md) that would otherwise park most replies.
    settings = root / "examples" / "demo" / "config" / "settings.py"
    # Sender authentication (SPF/DKIM/DMARC lookups) is measured apart: this machine may have no DNS at all,
    # and a lookup that times out would be measured instead of the pipeline. --auth turns it on.
    extra = "\nreply_rate_limit = 0\n" + ("" if auth else "auth_results = False\n")
    settings.write_text(settings.read_text() + extra)
    (root / "run").mkdir()
    (root / "logs").mkdir()
    ports = {"redis": free_port(), "receiver": free_port(), "relay": free_port()}
    env = dict(os.environ)
    env.update({
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        "LAMSON_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "LAMSON_RECEIVER_PORT": str(ports["receiver"]),
        "LAMSON_RELAY_PORT": str(ports["relay"]),
        "LAMSON_LOG_LEVEL": "WARNING",
    })
    queue = root / "run" / "queue"
    if sink == "smtp-sink":
        tools = subprocess.run([str(REPO.parent / "shared" / "tools" / "postfix-tools")], capture_output=True,
                               text=True, check=True).stdout.strip()
        (queue / "new").mkdir(parents=True)
        for folder in (root, root / "run", queue, queue / "new"):
            os.chmod(folder, 0o777 if folder.name == "new" else 0o755)  # smtp-sink writes as nobody
        sink_proc = subprocess.Popen([f"{tools}/smtp-sink", "-u", "nobody", "-d", f"{queue}/new/%H%M%S.",
                                      f"127.0.0.1:{ports['relay']}", "256"], start_new_session=True)
        (root / "run" / "smtp-sink.pid").write_text(str(sink_proc.pid))
    subprocess.run([str(BIN / "supervisord"), "-c", str(conf)], cwd=root, env=env, check=True)
    for port in ports.values():
        wait_port(port)
    time.sleep(2)  # workers import the application
    return env, ports


def stop(root: Path, env: dict[str, str]) -> None:
    conf = root / "deploy" / "supervisord.conf"
    subprocess.run([str(BIN / "supervisorctl"), "-c", str(conf), "shutdown"], env=env, capture_output=True)
    pidfile = root / "run" / "supervisord.pid"
    deadline = time.monotonic() + 60
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if pidfile.exists():
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
    sink_pid = root / "run" / "smtp-sink.pid"
    if sink_pid.exists():
        os.killpg(int(sink_pid.read_text()), signal.SIGTERM)


def sender(port: int, ids: list[str], acked: dict[str, float], size: int, interval: float = 0.0,
           senders: int = 1) -> None:
    filler = ("x" * 70 + "\r\n") * max(0, size // 72)
    next_send = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        for mid in ids:
            if interval:
                next_send += interval
                time.sleep(max(0.0, next_send - time.monotonic()))
            who = "bench@example.org" if senders <= 1 else f"bench{int(mid[1:]) % senders}@example.org"
            msg = (f"From: {who}\r\nTo: hello@test.com\r\nSubject: bench {mid}\r\n"
                   f"Message-ID: <{mid}@bench.example.org>\r\n\r\n{filler}")
            smtp.sendmail(who, ["hello@test.com"], msg)
            acked[mid] = time.time()


def arrivals(queue: Path) -> dict[str, float]:
    found = {}
    pattern = re.compile(rb"In-Reply-To: <([^@>]+)@bench")
    for entry in os.scandir(queue / "new"):
        with open(entry.path, "rb") as f:
            head = f.read(2048)
        m = pattern.search(head)
        if m:
            found[m.group(1).decode()] = entry.stat().st_mtime
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--routers", type=int, default=2, help="router worker processes (numprocs)")
    parser.add_argument("--size", type=int, default=1000, help="approximate body size in bytes")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="pace the sessions to this many messages/s in all (default: as fast as possible)")
    parser.add_argument("--auth", action="store_true",
                        help="keep SPF/DKIM/DMARC checks of incoming mail on (needs a reachable DNS)")
    parser.add_argument("--senders", type=int, default=1,
                        help="distinct envelope senders, round robin (1: one conversation, handled in order)")
    parser.add_argument("--sink", choices=["log", "smtp-sink"], default="log",
                        help="smart host: the logging server (default) or Postfix's smtp-sink")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="lamson-bench-"))
    env, ports = start(root, args.routers, args.sink, args.auth)
    try:
        ids = [f"m{i}" for i in range(args.messages)]
        acked: dict[str, float] = {}
        chunks = [ids[i::args.sessions] for i in range(args.sessions)]
        interval = args.sessions / args.rate if args.rate else 0.0
        threads = [threading.Thread(target=sender, args=(ports["receiver"], c, acked, args.size, interval,
                                                             args.senders))
                   for c in chunks]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_accepted = time.time()
        queue = root / "run" / "queue"
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if len(os.listdir(queue / "new")) >= args.messages:
                break
            time.sleep(0.2)
        got = arrivals(queue)
        t_done = max(got.values()) if got else time.time()
        latencies = sorted(got[m] - acked[m] for m in got if m in acked)
        print(f"messages={args.messages} sessions={args.sessions} routers={args.routers} size~{args.size}B "
          f"senders={args.senders} sink={args.sink} rate={args.rate or 'max'}")
        print(f"accepted: {len(acked)} in {t_accepted - t0:.2f}s = {len(acked) / (t_accepted - t0):.0f} msg/s")
        print(f"replies arrived: {len(got)} in {t_done - t0:.2f}s = {len(got) / (t_done - t0):.0f} msg/s end to end")
        if latencies:
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(f"latency 250 -> reply: p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
        if len(got) < args.messages:
            print(f"MISSING: {args.messages - len(got)} replies did not arrive within {args.timeout}s")
    finally:
        stop(root, env)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
