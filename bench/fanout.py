"""Benchmark a mailing list fan-out: one post to a list of N members through the real pipeline.

It copies examples/list into a scratch directory, starts the example's own
deploy/supervisord.conf there on free ports (its Redis, receiver, two router
workers, relay, metrics; not the logging server) with Postfix's smtp-sink as
the smart host (fetched by bench/loadtools.py into bench/.cache), puts
N members on the list ``lamson`` straight into Redis, sends one post from the
first member with smtplib and waits until the sink holds N copies. It prints
the time from the post's 250 to the last copy's arrival at the sink, and the
time per copy:

    .venv/bin/python bench/fanout.py --members 1000

Each copy is its own outbox file with its own VERP envelope sender, so this
measures the router building N copies in one handler call (and one group
commit), and the relay delivering N messages over its kept-open session.
Helpers (free ports, waiting, stopping) come from bench/pipeline.py. Nothing
is asserted: the figure is for examples/list/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from lamson.connection import with_credentials

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import BIN, REPO, free_port, postfix_tools, stop, wait_port  # noqa: E402 - bench/ is not a package


def prepare(scratch: Path) -> Path:
    """The example in ``scratch/examples/list``, its deploy without the logging server, no state."""
    root = scratch / "examples" / "list"
    shutil.copytree(REPO / "examples" / "list", root, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    for state in ("run", "logs"):
        shutil.rmtree(root / state)
        (root / state).mkdir()
    (scratch / ".venv").symlink_to(REPO / ".venv")  # the PATH line of the example's supervisord.conf
    conf = root / "deploy" / "supervisord.conf"
    conf.write_text(conf.read_text().split("; Development only: the logging server")[0])
    return root


def start_sink(root: Path, port: int) -> tuple[Path, subprocess.Popen[bytes]]:
    """Postfix's smtp-sink on ``port``, one file per message in sink/new beside the example (outside its
    run/, which the programs make private: smtp-sink writes as nobody)."""
    tools = postfix_tools()
    sink = root.parent.parent / "sink"
    (sink / "new").mkdir(parents=True)
    for folder in (root.parent.parent, sink, sink / "new"):
        os.chmod(folder, 0o777 if folder.name == "new" else 0o755)  # smtp-sink writes as nobody
    proc = subprocess.Popen([f"{tools}/smtp-sink", "-u", "nobody", "-d", f"{sink}/new/%H%M%S.",
                             f"127.0.0.1:{port}", "256"], start_new_session=True)
    (root / "run" / "smtp-sink.pid").write_text(str(proc.pid))
    wait_port(port)
    return sink / "new", proc


def answer_confirmation(arrived: Path, deadline: float) -> str:
    """The list's request to confirm the post (the first mail at the sink): its answer address; the request
    is removed from the sink so that only copies of the post are counted."""
    while time.monotonic() < deadline:
        for entry in os.scandir(arrived):
            found = re.search(rb"lamson-post-confirm-[A-Za-z0-9]+@test\.com", Path(entry.path).read_bytes())
            if found:
                os.unlink(entry.path)
                return found.group(0).decode()
        time.sleep(0.05)
    raise SystemExit("the list did not ask to confirm the post within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--size", type=int, default=2000, help="approximate body size of the post in bytes")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="lamson-fanout-"))
    root = prepare(scratch)
    ports = {"redis": free_port(), "receiver": free_port(), "relay": free_port(), "metrics": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMSON_")}
    env.update({
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        "LAMSON_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "LAMSON_RECEIVER_PORT": str(ports["receiver"]),
        "LAMSON_RELAY_PORT": str(ports["relay"]),
        "LAMSON_METRICS_PORT": str(ports["metrics"]),
        "LAMSON_AUTH_RESULTS": "0",  # this machine may have no DNS; sender checks are measured by bench/pipeline.py
        "LAMSON_LOG_LEVEL": "WARNING",
    })
    sink: subprocess.Popen[bytes] | None = None
    try:
        arrived, sink = start_sink(root, ports["relay"])
        subprocess.run([str(BIN / "supervisord"), "-c", str(root / "deploy" / "supervisord.conf")], cwd=root,
                       env=env, check=True)
        for port in (ports["redis"], ports["receiver"]):
            wait_port(port)
        conn = redis.Redis.from_url(with_credentials(env["LAMSON_REDIS_URL"], root / "run"))
        members = [f"member{n:05d}@example.net" for n in range(args.members)]
        conn.sadd("list:list:lamson:members", *members)
        time.sleep(3)  # the router workers and the relay import the application

        body = ("The quick brown fox jumps over the lazy dog, again and again.\r\n" * max(1, args.size // 64))
        post = f"From: {members[0]}\r\nTo: lamson@test.com\r\nSubject: fan-out\r\n\r\n{body}"
        with smtplib.SMTP("127.0.0.1", ports["receiver"], timeout=60) as smtp:
            smtp.sendmail(members[0], ["lamson@test.com"], post)
        # A post over plain SMTP has no verified sender (no DKIM, no DMARC here): the list holds it and asks
        # the member to confirm (examples/list README). Answer that, as the member would; the fan-out that
        # follows is what is measured.
        confirm_to = answer_confirmation(arrived, time.monotonic() + 60)
        with smtplib.SMTP("127.0.0.1", ports["receiver"], timeout=60) as smtp:
            smtp.sendmail(members[0], [confirm_to], f"From: {members[0]}\r\nTo: {confirm_to}\r\n"
                                                    f"Subject: Re: confirm\r\n\r\nyes\r\n")
        t_accepted = time.time()
        deadline = time.monotonic() + args.timeout
        count = 0
        while time.monotonic() < deadline:
            count = len(os.listdir(arrived))
            if count >= args.members:
                break
            time.sleep(0.05)
        last = max((e.stat().st_mtime for e in os.scandir(arrived)), default=time.time())
        took = last - t_accepted
        print(f"members={args.members} post~{len(post)}B routers=2 relay=1 sink=smtp-sink")
        print(f"copies at the smart host: {count} of {args.members}")
        if count:
            print(f"post accepted (250) -> last copy at the sink: {took:.2f}s = {took / count * 1000:.2f} ms per copy "
                  f"({count / took:.0f} copies/s)")
        if count < args.members:
            print(f"MISSING: {args.members - count} copies did not arrive within {args.timeout}s")
    finally:
        stop(root, env)  # supervisord, then the sink's process group (run/smtp-sink.pid)
        if sink is not None:
            sink.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
