"""Mail-model micro-benchmark: this project's lamson.mail against Salmon 3.3's salmon.mail.

Each message of the SpamAssassin public corpus (bench/corpus.py, ~6,000 real
messages) goes through what a handler does with mail: parse it as a
``MailRequest``, read From, To and Subject and the text ``body()``, build a
reply ``MailResponse`` and serialise it to bytes for the relay. The same loop
runs over the same messages under both libraries, each in its own
interpreter: Salmon from the package index in a side virtualenv
(bench/.cache/salmon-venv, made on first use), ours from this checkout.

    .venv/bin/python bench/mailmodel.py [--rounds 3] [--limit N]

Prints messages per second and µs per message for each, and the ratio. A
message either library fails on is counted and left out of both figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402 - bench/ is not a package

SALMON = "salmon-mail==3.3.0"
SALMON_VENV = corpus.CACHE / "salmon-venv"


def salmon_python() -> Path:
    """The side virtualenv's interpreter with Salmon installed (made once)."""
    python = SALMON_VENV / "bin" / "python"
    if not python.exists():
        venv.create(SALMON_VENV, with_pip=True)
    probe = subprocess.run([str(python), "-c", "import salmon.mail"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", SALMON],
                       check=True, stderr=subprocess.DEVNULL)
    return python


def handle(impl: str, raw: bytes) -> bytes:
    """What a handler does with one message under ``impl``; returns the serialised reply."""
    # Imported by name: each interpreter has one of the two libraries only (Salmon lives in the side venv).
    mail = importlib.import_module("salmon.mail" if impl == "salmon" else "lamson.mail")
    MailRequest, MailResponse = mail.MailRequest, mail.MailResponse  # noqa: N806 - the classes' own names
    request = MailRequest("127.0.0.1", None, None, raw)
    sender = request["From"] or "unknown@example.com"
    subject = request["Subject"] or ""
    _ = request["To"]
    body = request.body() or ""
    reply = MailResponse(To=sender, From="noreply@example.com", Subject=f"Re: {subject}",
                         Body=f"Thanks for your message of {len(body)} characters.\n")
    return bytes(str(reply), "utf-8") if impl == "salmon" else bytes(reply)


def probe(impl: str, limit: int | None) -> list[int]:
    """The indexes of the messages ``impl`` fails on (a warm-up round as well)."""
    failed = []
    for index, (_, _, raw) in enumerate(corpus.messages()):
        if limit is not None and index >= limit:
            break
        try:
            handle(impl, raw)
        except Exception:  # noqa: BLE001 - a benchmark counts failures, it does not stop on them
            failed.append(index)
    return failed


def timed(impl: str, rounds: int, limit: int | None, skip: set[int]) -> tuple[int, float]:
    """(messages, best seconds of ``rounds``) for the loop over the messages not in ``skip``."""
    raws = [raw for index, (_, _, raw) in enumerate(corpus.messages())
            if (limit is None or index < limit) and index not in skip]
    for raw in raws[:200]:
        handle(impl, raw)  # imports and caches warmed before the clock starts
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in raws:
            handle(impl, raw)
        best = min(best, time.perf_counter() - start)
    return len(raws), best


def child(argv: list[str]) -> None:
    """``mailmodel.py --child IMPL ROUNDS LIMIT SKIP-JSON``: one side of the comparison, JSON on stdout."""
    impl, rounds, limit, skip = argv[0], int(argv[1]), json.loads(argv[2]), set(json.loads(argv[3]))
    if rounds == 0:
        print(json.dumps({"failed": probe(impl, limit)}))
    else:
        count, seconds = timed(impl, rounds, limit, skip)
        print(json.dumps({"messages": count, "seconds": seconds}))


def run_in(python: Path, impl: str, rounds: int, limit: int | None, skip: set[int]) -> dict[str, Any]:
    out = subprocess.run([str(python), __file__, "--child", impl, str(rounds), json.dumps(limit),
                          json.dumps(sorted(skip))], capture_output=True, text=True, env=dict(os.environ))
    if out.returncode != 0:
        raise SystemExit(f"{impl}: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the best is reported")
    parser.add_argument("--limit", type=int, default=None, help="use the first N messages only")
    args = parser.parse_args()
    sides = ((Path(sys.executable), "lamson"), (salmon_python(), "salmon"))
    skip: set[int] = set()
    for python, impl in sides:
        failed = run_in(python, impl, 0, args.limit, set())["failed"]
        if failed:
            print(f"{impl}: fails on {len(failed)} messages (left out of both)")
        skip |= set(failed)
    # One timed round per child, the two sides alternating: a machine busy for a while slows both.
    results: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):
        for python, impl in sides:
            result = run_in(python, impl, 1, args.limit, skip)
            if impl not in results or result["seconds"] < results[impl]["seconds"]:
                results[impl] = result
    print(f"mail model: parse, From/To/Subject, body(), build a reply, serialise; "
          f"{results['lamson']['messages']} messages of the SpamAssassin corpus, best of {args.rounds}")
    for impl, result in results.items():
        per = result["seconds"] / result["messages"]
        print(f"  {impl:7} {result['messages'] / result['seconds']:8.0f} msg/s  {per * 1e6:7.0f} µs/msg")
    ratio = results["salmon"]["seconds"] / results["lamson"]["seconds"]
    print(f"  lamson runs at {ratio:.2f}x Salmon's speed (above 1: faster)")


if __name__ == "__main__":
    main()
