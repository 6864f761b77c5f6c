"""The routing job alone: CPU per message of a router worker, in one process.

It copies examples/demo to a scratch folder, starts its own redis-server on a
free port, spools N messages from S senders as the receiver would (spool,
sender lines), and routes them through ``lamson.workers.jobs.route`` in
wake-ups of 40 keys with the demo's handler, as a router worker does between
rq jobs (no rq, no SMTP). The runtime is the one a router worker builds
(``lamson.runtime.build_runtime(settings, "router")``) and is handed to each
job as its first argument, as lamson.rqcompat does. It prints the process CPU per message for each
round; with ``--profile`` it writes a CPU-time cProfile of the last round.

    .venv/bin/python bench/router.py [--messages 2000] [--senders 10] [--rounds 3] [--profile FILE]

Nothing is asserted: it is for finding where a router's time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pipeline  # noqa: E402 - bench/ is not a package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile (CPU time) of the last round here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lamson-router-bench-"))
    port = pipeline.free_port()
    redis_proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        pipeline.wait_port(port)
        shutil.copytree(HERE.parent / "examples" / "demo", root / "demo",
                        ignore=shutil.ignore_patterns("run", "logs", "__pycache__"))
        os.chdir(root / "demo")
        sys.path.insert(0, str(root / "demo"))
        os.environ["LAMSON_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        route_rounds(root / "demo", args)
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def route_rounds(project: Path, args: argparse.Namespace) -> None:
    from lamson import settings as lsettings
    from lamson.envelope import Envelope
    from lamson.runtime import build_runtime
    from lamson.workers import jobs
    from lamson.workers.worker import boot_until_loaded

    settings = lsettings.load(None, str(project))
    # The settings module's attributes, as bench/pipeline.py's settings.py lines set them (a load, no DNS).
    vars(settings).update(reply_rate_limit=0, auth_results=False)
    runtime = build_runtime(settings, "router")  # before the boot: it loads handlers into runtime's router
    boot_until_loaded(settings, None, ctx=runtime)
    body = "x" * 900

    def spool() -> list[tuple[str, str]]:
        keys = []
        for i in range(args.messages):
            sender = f"bench{i % args.senders}@example.org"
            data = (f"From: {sender}\r\nTo: hello@test.com\r\nSubject: m{i}\r\n"
                    f"Message-ID: <{i}.{time.time_ns()}@example.org>\r\n\r\n{body}\r\n").encode()
            key = runtime.spool().put(Envelope(sender, ("hello@test.com",)), data)
            runtime.lines().add([(key, sender)])
            keys.append((key, sender))
        return keys

    def route(keys: list[tuple[str, str]]) -> None:
        for i in range(0, len(keys), 40):
            batch = keys[i:i + 40]
            jobs.route(runtime, [key for key, _ in batch], "incoming", [sender for _, sender in batch])

    for n in range(args.rounds):
        keys = spool()
        started = time.process_time()
        if args.profile and n == args.rounds - 1:
            profile = cProfile.Profile(time.process_time)
            profile.runcall(route, keys)
            profile.dump_stats(args.profile)
        else:
            route(keys)
        used = time.process_time() - started
        print(f"round {n + 1}: {used * 1000 / len(keys):.3f} ms CPU per message routed "
              f"({args.messages} messages, {args.senders} senders)", flush=True)
        for key in runtime.outbox.waiting():  # the relay's part: the replies leave the outbox
            if runtime.outbox.claim(key, "bench") is not None:
                runtime.outbox.finish(key, "bench")


if __name__ == "__main__":
    main()
