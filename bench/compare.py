"""Issue 15's figures: this project's pipeline and Salmon 3.3's echo app on the same load, same run.

For each session count (default 1, 10, 50, 200) it starts the real
``deploy/supervisord.conf`` as shipped (bench/pipeline.py's Config: INFO logs,
metrics and web on; only what a one-host load needs changed, printed with the
figures; the same flags as bench/pipeline.py for other configurations) with
Postfix's smtp-sink as the smart host, sends ``--messages`` messages with the load client, waits for
every reply at the sink, and stops it; then the same for Salmon 3.3
(bench/salmon_echo, run by the side virtualenv bench/mailmodel.py makes) with
its relay pointed at its own smtp-sink. It prints one table: end-to-end msg/s
of both and the ratio, CPU ms per message (ours per program and in total;
Salmon's one process), Redis commands per message, peak RSS per program and,
with ``--latency``, p50/p99 accept-to-delivered latency of ours at half the
capacity just measured (smtplib client, paced with ``--rate``).

    .venv/bin/python bench/compare.py --messages 2000 --latency
    .venv/bin/python bench/compare.py --differences --rounds 3   # what each difference from shipped costs

At the end it saves the figures as JSON (``--json``, default
docs/img/bench-compare.json) and draws them as SVG charts into ``--charts``
(default docs/img; bench/charts.py, which also re-draws from a saved JSON).
The load tools (Postfix's smtp-source and smtp-sink) come from the
distribution's package, fetched once by bench/loadtools.py.

Salmon's receiver runs the handler and delivers the reply inside the SMTP
session, before its 250, with nothing written to disk: it is not durable, and
a point where it stops answering is cut off after ``--salmon-timeout`` seconds
and printed as collapsed. Nothing is asserted: the figures vary with the
machine (2 shared cores here); run it more than once and report ranges.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

try:
    import charts  # noqa: E402 - bench/ is not a package
except ModuleNotFoundError as exc:  # matplotlib: a test dependency, not one of the pipeline's
    sys.exit(f"bench/compare.py draws its charts with {exc.name}, one of the test dependencies: "
             "run bash scripts/setup --test first")
import pipeline  # noqa: E402
from mailmodel import salmon_python  # noqa: E402

#: Scratch folders of the points run so far, deleted when the sweep ends, not between points:
#: on ext4 without a journal, creating a file skips every inode deleted in the last few seconds,
#: reading each, so deleting one point's thousands of files would slow the next point's writes
#: (both projects' smart hosts write every reply to a file).
SCRATCH: list[Path] = []

# The pipeline's programs in the order of the per-program table (router_NN added as found).
ORDER = ["receiver", "router_00", "router_01", "relay", "redis", "metrics", "supervisord"]


def run_lamson(sessions: int, args: argparse.Namespace, client: str, messages: int, rate: float = 0.0,
               senders: int | None = None, config: pipeline.Config | None = None) -> pipeline.Load:
    """One load on a freshly started pipeline (scratch copy, free ports, smtp-sink), stopped afterwards:
    the shipped configuration, or ``config``, or what the flags ask for."""
    root = Path(tempfile.mkdtemp(prefix="lamson-compare-"))
    SCRATCH.append(root)
    return pipeline.measure(root, config or pipeline.config_from(args), messages=messages, sessions=sessions,
                            size=args.size, senders=senders or args.senders, client=client, rate=rate,
                            timeout=args.timeout, settle=not args.no_settle)


def run_salmon(sessions: int, args: argparse.Namespace, python: Path, client: str) -> pipeline.Load:
    """One load on a freshly started Salmon echo app (its own process and smtp-sink), stopped afterwards."""
    root = Path(tempfile.mkdtemp(prefix="salmon-compare-"))
    app = root / "app"
    shutil.copytree(HERE / "salmon_echo", app, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "run").mkdir()
    ports = {"receiver": pipeline.free_port(), "relay": pipeline.free_port()}
    env = dict(os.environ, SALMON_ECHO_RECEIVER_PORT=str(ports["receiver"]),
               SALMON_ECHO_RELAY_PORT=str(ports["relay"]), PYTHONDONTWRITEBYTECODE="1")
    sink_pid = root / "run" / "smtp-sink.pid"
    proc: subprocess.Popen[bytes] | None = None
    config = pipeline.config_from(args)  # for the sink's folder: the same as ours
    cost = pipeline.creation_cost(root / "probe")
    try:
        sink = pipeline.start_sink(pipeline.sink_folder(root, config), ports["relay"], sink_pid)
        with open(root / "run" / "salmon.log", "wb") as log:
            proc = subprocess.Popen([str(python.parent / "salmon"), "start", "--no-daemon",
                                     "--pid", str(root / "run" / "salmon.pid")],
                                    cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT)
        pipeline.wait_port(ports["receiver"])
        load = pipeline.run_load(ports["receiver"], pipeline.replies(root, "smtp-sink"),
                                 {"salmon": proc.pid, "sink": sink.pid}, messages=args.messages, sessions=sessions,
                                 size=args.size, senders=args.senders, client=client, timeout=args.salmon_timeout)
        load.config = f"Salmon 3.3 echo app, Postfix's smtp-sink writing to {config.sink_dir}"
        load.disk_us = cost
        return load
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        pipeline.kill_sink(sink_pid)
        pipeline.remove_sink_folder(root)
        SCRATCH.append(root)


def outcome(load: pipeline.Load) -> str:
    """End-to-end msg/s, or how far a point that did not finish got."""
    if load.replies >= load.messages:
        return f"{load.rate:.0f}"
    return f"collapsed ({load.replies} of {load.messages} replies in {load.seconds:.0f} s)"


def errors(load: pipeline.Load) -> str:
    """The load client's distinct errors, briefly (why a point collapsed)."""
    found = sorted(set(load.failures))
    return f"; client errors ({len(load.failures)}): " + " | ".join(found[:3]) if found else ""


def as_json(load: pipeline.Load, paced_rate: float | None = None) -> dict[str, object]:
    """One load's figures for the JSON file (bench/charts.py's LOAD): rates, CPU per program, latency."""
    figures: dict[str, object] = {
        "messages": load.messages, "sessions": load.sessions, "client": load.client,
        "accepted": load.accepted, "accept_seconds": round(load.accept_seconds, 3),
        "replies": load.replies, "seconds": round(load.seconds, 3), "rate": round(load.rate, 1),
        "complete": load.replies >= load.messages,
        "cpu_ms": {name: round(load.cpu_ms(name), 3) for name in sorted(load.cpu)},
        "ours_ms": round(load.ours_ms(), 3),
        "client_ms": round(load.client_cpu * 1000 / max(1, load.replies), 3),
        "redis_per_message": round(sum(load.redis.values()) / max(1, load.replies), 2),
        "rss_mb": {name: [round(main / 1024, 1), round(child / 1024, 1)] for name, (main, child) in sorted(load.rss.items())},
        "machine_busy": round(load.machine[0] / load.machine[1], 3) if load.machine[1] else None,
        # busy time of the machine none of the measured processes used (other work on a shared machine)
        "other_work": round(max(0.0, load.machine[0] - sum(load.cpu.values()) - load.client_cpu) / load.machine[1], 3)
        if load.machine[1] else None,
        "failures": sorted(set(load.failures))[:5],
        "when": load.when, "config": load.config, "disk_us": round(load.disk_us, 1),
        "log_lines_per_message": round(sum(load.log_lines.values()) / max(1, load.replies), 2),
        "latency_ms": {"p50": round(pipeline.percentile(load.latencies, 0.5) * 1000, 1),
                       "p90": round(pipeline.percentile(load.latencies, 0.9) * 1000, 1),
                       "p99": round(pipeline.percentile(load.latencies, 0.99) * 1000, 1)} if load.latencies else None,
    }
    if paced_rate is not None:
        figures["paced_rate"] = round(paced_rate, 1)
    return figures


def save(args: argparse.Namespace, points: list[int], ours: dict[int, pipeline.Load],
         theirs: dict[int, pipeline.Load], retried: dict[int, pipeline.Load], paced: dict[int, pipeline.Load]) -> None:
    """The sweep's figures as JSON (``--json``) and as SVG charts (``--charts``), drawn from that JSON so
    that bench/charts.py re-draws the same pictures from the file. The Salmon point shown is the
    smtplib retry where there was one (as in the table); the first try is kept beside it."""
    figures: dict[str, object] = {
        "schema": 1, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
        "settings": {"messages": args.messages, "size": args.size, "client": args.client,
                     "senders": args.senders, "routers": args.routers, "config": pipeline.config_from(args).label(),
                     "config_changes": pipeline.config_from(args).changes()},
        "points": [{
            "sessions": s,
            "lamson": as_json(ours[s]),
            "salmon": as_json(retried.get(s, theirs[s])) if s in theirs else None,
            "salmon_first_try": as_json(theirs[s]) if s in retried else None,
            "latency": as_json(paced[s], ours[s].rate / 2) if s in paced else None,
        } for s in points],
    }
    path = Path(args.json) if args.json else Path(args.charts) / "bench-compare.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1) + "\n")
    written = charts.draw(json.loads(path.read_text()), Path(args.charts))
    print(f"\nfigures: {path}; charts: {', '.join(str(p) for p in written)}")


def table(rows: list[list[str]]) -> None:
    """A Markdown table (first row the header), pasteable into the README."""
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows[1:]:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,10,50,200", help="comma-separated session counts")
    parser.add_argument("--messages", type=int, default=2000, help="messages per point")
    parser.add_argument("--senders", type=int, default=100,
                        help="distinct envelope senders (smtp-source: one per process, at most one per session)")
    parser.add_argument("--client", choices=["smtp-source", "smtplib"], default="smtp-source")
    parser.add_argument("--size", type=int, default=1000, help="approximate body size in bytes")
    pipeline.add_config_flags(parser)
    parser.add_argument("--differences", action="store_true",
                        help="instead of the sweep: the shipped configuration, each difference from the bench's "
                             "old settings alone, and all of them together, at each --sessions (default 1,10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --differences (alternating)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds per point for this project")
    parser.add_argument("--salmon-timeout", type=float, default=30, help="seconds per point for Salmon")
    parser.add_argument("--no-salmon", action="store_true", help="measure this project only")
    parser.add_argument("--latency", action="store_true",
                        help="run each point again paced at half its measured capacity and print p50/p99")
    parser.add_argument("--latency-seconds", type=float, default=15,
                        help="length of a latency run (messages = half capacity x this, at most --messages)")
    parser.add_argument("--charts", default=str(HERE.parent / "docs" / "img"),
                        help="folder for the SVG charts (default docs/img)")
    parser.add_argument("--json", default=None,
                        help="file for the figures as JSON (default: bench-compare.json in the --charts folder)")
    args = parser.parse_args()
    pipeline.terminate_cleanly()
    try:
        if args.differences:
            differences(args)
        else:
            sweep(args)
    finally:
        for root in SCRATCH:
            shutil.rmtree(root, ignore_errors=True)


def sweep(args: argparse.Namespace) -> None:
    """Every point, then the tables."""
    points = [int(s) for s in args.sessions.split(",")]
    python = None if args.no_salmon else salmon_python()

    ours: dict[int, pipeline.Load] = {}
    theirs: dict[int, pipeline.Load] = {}
    paced: dict[int, pipeline.Load] = {}
    retried: dict[int, pipeline.Load] = {}  # Salmon again with staggered connects where the burst stalled it
    started = time.monotonic()
    for sessions in points:
        load = ours[sessions] = run_lamson(sessions, args, args.client, args.messages)
        print(f"[{time.monotonic() - started:5.0f}s] lamson {sessions:>3} sessions: {outcome(load)} msg/s, "
              f"{load.ours_ms():.2f} ms CPU/msg{errors(load)}", flush=True)
        if python is not None:
            load = theirs[sessions] = run_salmon(sessions, args, python, args.client)
            print(f"[{time.monotonic() - started:5.0f}s] salmon {sessions:>3} sessions: {outcome(load)} msg/s, "
                  f"{load.cpu_ms('salmon'):.2f} ms CPU/msg{errors(load)}", flush=True)
            if load.replies < load.messages and args.client == "smtp-source":
                # smtp-source opens every session at once; Salmon's smtpd listens with a backlog of 5, so
                # a burst of connections stalls in the handshake. smtplib's threads connect one after another.
                load = retried[sessions] = run_salmon(sessions, args, python, "smtplib")
                print(f"[{time.monotonic() - started:5.0f}s] salmon {sessions:>3} sessions, smtplib client: "
                      f"{outcome(load)} msg/s, {load.cpu_ms('salmon'):.2f} ms CPU/msg{errors(load)}", flush=True)
        if args.latency and ours[sessions].rate:
            rate = ours[sessions].rate / 2
            messages = max(sessions, min(args.messages, int(rate * args.latency_seconds)))
            load = paced[sessions] = run_lamson(sessions, args, "smtplib", messages, rate=rate)
            p50 = pipeline.percentile(load.latencies, 0.5) * 1000 if load.latencies else float("nan")
            p99 = pipeline.percentile(load.latencies, 0.99) * 1000 if load.latencies else float("nan")
            print(f"[{time.monotonic() - started:5.0f}s] lamson {sessions:>3} sessions at {rate:.0f} msg/s: "
                  f"p50 {p50:.0f} ms, p99 {p99:.0f} ms", flush=True)

    senders = ("one per smtp-source process: " + ", ".join(f"{min(s, args.senders)} at {s}" for s in points)
               if args.client == "smtp-source" else f"{args.senders}, round robin")
    print(f"\n{args.messages} messages of ~{args.size} B per point, client {args.client}, senders {senders}; "
          f"sink: Postfix's smtp-sink for both; {args.routers} router workers; "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(pipeline.config_from(args).describe() + "\n")
    header = ["sessions", "Lamson msg/s (durable)", "Salmon 3.3 msg/s (not durable)", "ratio",
              "Lamson CPU ms/msg", "Salmon CPU ms/msg", "Redis cmds/msg"]
    if paced:
        header.append("p50 / p99 at half capacity")
    rows = [header]
    for sessions in points:
        load, salmon = ours[sessions], theirs.get(sessions)
        shown = outcome(salmon) if salmon else "–"
        if sessions in retried:
            salmon = retried[sessions]
            shown += f"; smtplib client: {outcome(salmon)}*"
        ratio = (f"{load.rate / salmon.rate:.2f}" + ("*" if sessions in retried else "")
                 if salmon and salmon.rate and salmon.replies >= salmon.messages else "–")
        row = [str(sessions), outcome(load), shown, ratio, f"{load.ours_ms():.2f}",
               f"{salmon.cpu_ms('salmon'):.2f}" if salmon and salmon.replies else "–",
               f"{sum(load.redis.values()) / max(1, load.replies):.1f}"]
        if paced:
            lat = paced.get(sessions)
            row.append(f"{pipeline.percentile(lat.latencies, 0.5) * 1000:.0f} / "
                       f"{pipeline.percentile(lat.latencies, 0.99) * 1000:.0f} ms at {ours[sessions].rate / 2:.0f} msg/s"
                       if lat and lat.latencies else "–")
        rows.append(row)
    table(rows)
    if retried:
        print("\n* smtp-source opens all its sessions at once and Salmon's smtpd listens with a backlog of 5:"
              " part of the burst stalls in the TCP handshake. Salmon was run again with the smtplib client"
              " (threads that connect one after another); the ratio is against that run.")

    names = [n for n in ORDER if any(n in load.cpu for load in ours.values())]
    names += sorted({n for load in ours.values() for n in load.cpu} - set(names) - pipeline.NOT_OURS)
    print("\nCPU ms per message by program (process tree, first send to last reply; sink and client not in 'ours'):\n")
    rows = [["sessions", *names, "ours", "smtp-sink", "client"]]
    for sessions, load in ours.items():
        rows.append([str(sessions), *(f"{load.cpu_ms(n):.2f}" for n in names), f"**{load.ours_ms():.2f}**",
                     f"{load.cpu_ms('sink'):.2f}", f"{load.client_cpu * 1000 / max(1, load.replies):.2f}"])
    for sessions, salmon in theirs.items():
        salmon = retried.get(sessions, salmon)
        rows.append([f"{sessions} (Salmon)", *("" for _ in names), f"**{salmon.cpu_ms('salmon'):.2f}**",
                     f"{salmon.cpu_ms('sink'):.2f}", f"{salmon.client_cpu * 1000 / max(1, salmon.replies):.2f}"])
    table(rows)
    busy = [f"{s}: {100 * load.machine[0] / load.machine[1]:.0f}% (other work "
            f"{100 * max(0.0, load.machine[0] - sum(load.cpu.values()) - load.client_cpu) / load.machine[1]:.0f}%)"
            for s, load in ours.items() if load.machine[1]]
    print(f"\nmachine busy during our loads, all cores (of it, processes not measured here): {', '.join(busy)}")

    print("\nPeak RSS (VmHWM) per program, largest over the points; a forked child (rq's scheduler) apart:\n")
    rows = [["program", "peak RSS", "largest child"]]
    for name in [*names, "sink"]:
        main_kb = max(load.rss.get(name, (0, 0))[0] for load in ours.values())
        child_kb = max(load.rss.get(name, (0, 0))[1] for load in ours.values())
        rows.append([name, f"{main_kb / 1024:.0f} MB", f"{child_kb / 1024:.0f} MB" if child_kb else "–"])
    if theirs:
        rows.append(["Salmon (one process)", f"{max(s.rss.get('salmon', (0, 0))[0] for s in theirs.values()) / 1024:.0f} MB",
                     "–"])
    table(rows)

    calls: dict[str, int] = {}
    replies = 0
    for load in ours.values():
        replies += load.replies
        for name, count in load.redis.items():
            calls[name] = calls.get(name, 0) + count
    print(f"\nRedis commands per message over all points: {sum(calls.values()) / max(1, replies):.1f}; top: "
          + ", ".join(f"{k} {v / max(1, replies):.2f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:10]))

    targets(ours, {s: retried.get(s, load) for s, load in theirs.items()})
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    save(args, points, ours, theirs, retried, paced)


def other_work(load: pipeline.Load) -> float:
    """Share of all cores busy with processes this run did not start, over the load (0..1)."""
    busy, total = load.machine
    return max(0.0, busy - sum(load.cpu.values()) - load.client_cpu) / total if total else 0.0


def targets(ours: dict[int, pipeline.Load], salmon: dict[int, pipeline.Load]) -> None:
    """Issue 24's targets, from this run's points (Salmon's in the same run)."""
    print("\nAgainst issue 24's targets (this run; Salmon in the same run):")
    for sessions, load in ours.items():
        other = salmon.get(sessions)
        if other is not None and other.replies:
            mine, theirs = load.ours_ms(), other.cpu_ms("salmon")
            print(f"  CPU/msg at {sessions} sessions: {mine:.2f} ms vs Salmon's {theirs:.2f} "
                  f"({mine / theirs:.2f}x): {'met' if mine <= theirs else 'not met'}")
    for sessions in (1, 10):
        mine_load, other = ours.get(sessions), salmon.get(sessions)
        if mine_load is not None and other is not None and other.rate and other.replies >= other.messages:
            ratio = mine_load.rate / other.rate
            print(f"  end to end at {sessions} sessions: {mine_load.rate:.0f} vs Salmon's {other.rate:.0f} msg/s "
                  f"({ratio:.2f}x, target >= 2x): {'met' if ratio >= 2 else 'not met'}")
    if 10 in ours and 200 in ours and ours[10].rate:
        ratio = ours[200].rate / ours[10].rate
        print(f"  200 sessions within 10 % of 10: {ours[200].rate:.0f} vs {ours[10].rate:.0f} msg/s "
              f"({100 * (ratio - 1):+.0f} %): {'met' if ratio >= 0.9 else 'not met'}")


#: The differences between the shipped configuration and the bench's settings before issue 24, each
#: measured alone by ``--differences``: (name, the Config fields that differ from the shipped one).
DIFFERENCES: list[tuple[str, dict[str, Any]]] = [
    ("shipped (INFO logs, metrics, web; sink on tmpfs)", {}),
    ("log level WARNING", {"log_level": "WARNING"}),
    ("no web program", {"web": False}),
    ("no metrics program", {"metrics": False}),
    ("sink writes its files on the spool's disk", {"sink_dir": "disk"}),
    ("best: WARNING, no web, no metrics", {"log_level": "WARNING", "web": False, "metrics": False}),
]


def differences(args: argparse.Namespace) -> None:
    """Each difference alone at each session count, in alternating order (shipped first, then each
    variant, and again), printed as one table: what each one costs per message and in msg/s."""
    points = [int(s) for s in args.sessions.split(",")] if args.sessions != "1,10,50,200" else [1, 10]
    base = pipeline.config_from(args)
    started = time.monotonic()
    found: dict[tuple[str, int], list[pipeline.Load]] = {}
    for round_ in range(args.rounds):
        for sessions in points:
            for name, fields in DIFFERENCES:
                config = dataclasses.replace(base, **fields)
                load = run_lamson(sessions, args, args.client, args.messages, config=config)
                found.setdefault((name, sessions), []).append(load)
                print(f"[{time.monotonic() - started:5.0f}s] round {round_ + 1}, {sessions:>3} sessions, {name}: "
                      f"{outcome(load)} msg/s, {load.ours_ms():.2f} ms CPU/msg, supervisord "
                      f"{load.cpu_ms('supervisord'):.2f}, other work {100 * other_work(load):.0f} %, "
                      f"disk {load.disk_us:.0f} µs/file{errors(load)}", flush=True)
    print(f"\n{args.messages} messages of ~{args.size} B per point, client {args.client}, {args.senders} senders; "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.rounds} round(s), "
          "range over the rounds")
    print(base.describe() + "\n")

    def span(values: list[float], fmt: str) -> str:
        low, high = min(values), max(values)
        return fmt.format(low) if fmt.format(low) == fmt.format(high) else fmt.format(low) + "–" + fmt.format(high)

    rows = [["difference from shipped", *(f"{s} session{'s' * (s > 1)}: CPU ms/msg (ours)" for s in points),
             *(f"{s}: msg/s" for s in points), *(f"{s}: supervisord ms/msg" for s in points), "log lines/msg", "other work"]]
    for name, _ in DIFFERENCES:
        loads = [found[(name, s)] for s in points]
        rows.append([name, *(span([x.ours_ms() for x in group], "{:.2f}") for group in loads),
                     *(span([x.rate for x in group], "{:.0f}") for group in loads),
                     *(span([x.cpu_ms("supervisord") for x in group], "{:.2f}") for group in loads),
                     span([sum(x.log_lines.values()) / max(1, x.replies) for group in loads for x in group], "{:.1f}"),
                     span([100 * other_work(x) for group in loads for x in group], "{:.0f} %")])
    table(rows)
    best = "best: WARNING, no web, no metrics"
    print("\nShipped within 10 % of the best configuration (medians over the rounds):")
    for sessions in points:
        shipped = statistics.median(x.rate for x in found[(DIFFERENCES[0][0], sessions)])
        top = statistics.median(x.rate for x in found[(best, sessions)])
        cpu_a = statistics.median(x.ours_ms() for x in found[(DIFFERENCES[0][0], sessions)])
        cpu_b = statistics.median(x.ours_ms() for x in found[(best, sessions)])
        print(f"  {sessions} sessions: {shipped:.0f} vs {top:.0f} msg/s ({100 * (shipped / top - 1):+.0f} %), "
              f"CPU {cpu_a:.2f} vs {cpu_b:.2f} ms/msg ({100 * (cpu_a / cpu_b - 1):+.0f} %): "
              f"{'met' if shipped >= 0.9 * top else 'not met'}")
    print(f"\ntotal time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
