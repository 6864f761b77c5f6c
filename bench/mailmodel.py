"""Mail-model micro-benchmark: this project's lamson.mail against Salmon 3.3's salmon.mail.

Each message of the SpamAssassin public corpus (bench/corpus.py, ~6,000 real
messages) goes through what a handler does with mail, under both libraries,
each in its own interpreter: Salmon from the package index in a side
virtualenv (bench/.cache/salmon-venv, made on first use, with the same Jinja2
as ours), ours from this checkout. Two workloads:

``narrow``
    parse it as a ``MailRequest`` (no envelope: From/To taken from the
    headers), read From, To and Subject and the text ``body()``, build a reply
    ``MailResponse`` with a literal body and serialise it to bytes.
``roundtrip``
    the whole of a templated reply, as an application writes one: parse the
    message with the envelope the receiver gives it, read From, To, Subject
    and ``body()``; build the reply with the library's ``view.respond`` (a
    Jinja2 ``Environment`` on a template directory as ``view.LOADER``, the body
    a template quoting the subject and the first lines of the message, the
    headers ``%(name)s`` strings, the form both libraries' ``respond`` take);
    serialise it; parse those bytes again as a message read back from a queue
    (no envelope), and read its From, To, Subject and ``body()``. Same
    template, same variables, same calls on both sides; ours also checks each
    header for injection and adds ``Auto-Submitted`` (RFC 3834), Salmon's does not.

    .venv/bin/python bench/mailmodel.py [--rounds 5] [--limit N] [--workload roundtrip|narrow|both]

Rounds alternate the two sides (one child process per side and round), so a
machine busy for a while slows both. Prints, per workload, µs per message for
each side (best, and the range over the rounds) and the ratio of the bests. A
message either library fails on is counted and left out of both figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
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
WORKLOADS = ("roundtrip", "narrow")
SALMON_VENV = corpus.CACHE / "salmon-venv"


def salmon_python() -> Path:
    """The side virtualenv's interpreter with Salmon installed (made once)."""
    python = SALMON_VENV / "bin" / "python"
    if not python.exists():
        venv.create(SALMON_VENV, with_pip=True)
    import jinja2  # noqa: PLC0415 - ours; Salmon gets the same version (its view needs one, it ships none)

    jinja = f"jinja2=={jinja2.__version__}"
    check = f"import salmon.mail, jinja2; assert jinja2.__version__ == {jinja2.__version__!r}"
    probe = subprocess.run([str(python), "-c", check], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", SALMON, jinja],
                       check=True, stderr=subprocess.DEVNULL)
    return python


def narrow(impl: str, raw: bytes) -> bytes:
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


#: The reply's body template (the same file for both sides): the variables a reply usually quotes.
REPLY_TEMPLATE = """Hello {{ sender }},

we got your message "{{ subject }}" ({{ size }} characters) for {{ to }}.
It began:
{% for line in lines %}> {{ line }}
{% endfor %}
Regards,
the robot at example.com
"""

_VIEWS: dict[str, Any] = {}


def view_module(impl: str) -> Any:
    """The library's ``view`` module, its ``LOADER`` a Jinja2 Environment on a directory with the template.

    Made once per process, as an application's boot file does; the Environment
    caches the compiled template, in both libraries.
    """
    if impl not in _VIEWS:
        import jinja2  # noqa: PLC0415 - installed on both sides; imported where the view is made

        view: Any = importlib.import_module("salmon.view" if impl == "salmon" else "lamson.view")
        folder = corpus.CACHE / "mailmodel-templates"  # beside the corpus; rewritten by every run
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "reply.txt").write_text(REPLY_TEMPLATE, encoding="utf-8")
        view.LOADER = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)))
        _VIEWS[impl] = view
    return _VIEWS[impl]


def roundtrip(impl: str, raw: bytes) -> bytes:
    """A templated reply to one message, serialised and read back; returns the reply's bytes."""
    mail = importlib.import_module("salmon.mail" if impl == "salmon" else "lamson.mail")
    view = view_module(impl)
    request = mail.MailRequest("127.0.0.1", "sender@example.org", "robot@example.com", raw)
    sender = request["From"] or "unknown@example.com"
    to = request["To"] or ""
    subject = request["Subject"] or ""
    body = request.body() or ""
    variables = {"sender": sender, "to": to, "subject": subject, "size": len(body),
                 "lines": body.splitlines()[:3]}
    reply = view.respond(variables, Body="reply.txt", From="robot@example.com", To="%(sender)s",
                         Subject="Re: %(subject)s")
    wire = bytes(str(reply), "utf-8") if impl == "salmon" else bytes(reply)
    again = mail.MailRequest("127.0.0.1", None, None, wire)
    if not (again["From"] and again["To"] is not None and again["Subject"] is not None and again.body()):
        raise ValueError("the reply did not read back")
    return wire


def handle(workload: str, impl: str, raw: bytes) -> bytes:
    return (roundtrip if workload == "roundtrip" else narrow)(impl, raw)


def probe(workload: str, impl: str, limit: int | None) -> list[int]:
    """The indexes of the messages ``impl`` fails on (a warm-up round as well)."""
    failed = []
    for index, (_, _, raw) in enumerate(corpus.messages()):
        if limit is not None and index >= limit:
            break
        try:
            handle(workload, impl, raw)
        except Exception:  # noqa: BLE001 - a benchmark counts failures, it does not stop on them
            failed.append(index)
    return failed


def timed(workload: str, impl: str, rounds: int, limit: int | None, skip: set[int]) -> tuple[int, float]:
    """(messages, best CPU seconds of ``rounds``) for the loop over the messages not in ``skip``."""
    raws = [raw for index, (_, _, raw) in enumerate(corpus.messages())
            if (limit is None or index < limit) and index not in skip]
    for raw in raws[:200]:
        handle(workload, impl, raw)  # imports and caches warmed before the clock starts
    best = float("inf")
    for _ in range(rounds):
        # CPU time of this process, not wall time: on a shared machine a busy neighbour stretches wall
        # time (the process waits for a core) far more than it changes the work a message costs.
        start = time.process_time()
        for raw in raws:
            handle(workload, impl, raw)
        best = min(best, time.process_time() - start)
    return len(raws), best


def child(argv: list[str]) -> None:
    """``mailmodel.py --child WORKLOAD IMPL ROUNDS LIMIT SKIP-JSON``: one side of the comparison, JSON out."""
    workload, impl, rounds = argv[0], argv[1], int(argv[2])
    limit, skip = json.loads(argv[3]), set(json.loads(argv[4]))
    if rounds == 0:
        print(json.dumps({"failed": probe(workload, impl, limit)}))
    else:
        count, seconds = timed(workload, impl, rounds, limit, skip)
        print(json.dumps({"messages": count, "seconds": seconds}))


def run_in(python: Path, workload: str, impl: str, rounds: int, limit: int | None,
           skip: set[int]) -> dict[str, Any]:
    out = subprocess.run([str(python), __file__, "--child", workload, impl, str(rounds), json.dumps(limit),
                          json.dumps(sorted(skip))], capture_output=True, text=True, env=dict(os.environ))
    if out.returncode != 0:
        raise SystemExit(f"{impl}: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def compare(workload: str, sides: tuple[tuple[Path, str], ...], rounds: int, limit: int | None) -> None:
    """Run ``workload`` on both sides, alternating, and print the figures."""
    skip: set[int] = set()
    for python, impl in sides:
        failed = run_in(python, workload, impl, 0, limit, set())["failed"]
        if failed:
            print(f"{workload}: {impl} fails on {len(failed)} messages (left out of both)")
        skip |= set(failed)
    # One timed round per child, the two sides alternating: a machine busy for a while slows both.
    per_message: dict[str, list[float]] = {impl: [] for _, impl in sides}
    count = 0
    for _ in range(rounds):
        for python, impl in sides:
            result = run_in(python, workload, impl, 1, limit, skip)
            count = result["messages"]
            per_message[impl].append(result["seconds"] / result["messages"] * 1e6)
    what = ("parse (envelope given), From/To/Subject, body(), view.respond with a Jinja2 body template, "
            "serialise, parse again (no envelope), From/To/Subject, body()" if workload == "roundtrip"
            else "parse (no envelope), From/To/Subject, body(), build a reply with a literal body, serialise")
    print(f"mail model, {workload}: {what}; {count} messages of the SpamAssassin corpus, {rounds} rounds")
    for impl, figures in per_message.items():
        best = min(figures)
        print(f"  {impl:7} {1e6 / best:8.0f} msg/s  {best:7.0f} µs/msg (CPU) best  "
              f"(rounds {min(figures):.0f}–{max(figures):.0f}, median {statistics.median(figures):.0f})")
    ratio = min(per_message["salmon"]) / min(per_message["lamson"])
    print(f"  lamson runs at {ratio:.2f}x Salmon's speed (best against best; above 1: faster)")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per side; the best is reported")
    parser.add_argument("--limit", type=int, default=None, help="use the first N messages only")
    parser.add_argument("--workload", choices=(*WORKLOADS, "both"), default="both")
    args = parser.parse_args()
    sides = ((Path(sys.executable), "lamson"), (salmon_python(), "salmon"))
    for workload in WORKLOADS:
        if args.workload in (workload, "both"):
            compare(workload, sides, args.rounds, args.limit)


if __name__ == "__main__":
    main()
