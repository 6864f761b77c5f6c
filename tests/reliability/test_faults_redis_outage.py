"""Back to work at once after a Redis outage (issue 19).

A minute (and 5 s) without Redis under load, on the real deploy/supervisord.conf (the
demo with its default settings): mail keeps being accepted into the Maildir
spool; when Redis is back, the workers, which tried it every second, resume
at once and their housekeepers sweep at once, whatever the rq queue holds, so
the replies of the backlog start reaching the smart host within seconds; none
is lost, none is sent twice, none is held back by ``reply_rate_limit`` (which
counts replies by when their mail was accepted). And the sweep itself: waiting
mail is woken even while the queue holds wake-ups, at most once per interval
across workers, and all of it (retries not yet due excepted) on a catch-up.
And a worker's own probe sees Redis back within 2 s, whatever the outage's length.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from types import SimpleNamespace

import redis

from lamson import context, maildir, queues, rqcompat, sweeper
from lamson.connection import connect
from lamson.envelope import Envelope
from lamson.liveness import Liveness
from lamson.names import Names
from lamson.settings import DEFAULTS
from lamson.spool import MaildirSpool
from lamson.workerbase import wait_for_redis
from tests.e2e.conftest import Pipeline
from tests.reliability.ledger import Ledger, session
from tests.support import free_port, redis_server, stop_process, wait_for

#: The issue's minute, and 5 s: rq's own backoff (1, 2, 4, ... 32 s, then 60 s) happens to try Redis
#: again 63 s into an outage, just after a 60 s one; most lengths, 65 s too, land in a long sleep of it.
OUTAGE = 65.0
#: 20 senders, each sending about 40 messages a minute: below reply_rate_limit (60) as the mail arrives.
SENDERS, PER_SENDER, PAUSE = 20, 60, 1.4
#: The backlog's first reply must reach the smart host within this long of Redis answering. The aim is
#: 5 s (measured: 1-2 s); a busy test machine gets the rest. Before issue 19 it took 30-45 s.
FIRST_REPLY_WITHIN = 10.0
#: Each worker's first job after Redis answers (they try it every second; the sweep wakes the backlog at once).
WORKERS_BACK_WITHIN = 6.0


class Replies:
    """What the smart host (the demo's ``log`` program, into run/queue) received, read incrementally."""

    def __init__(self, queue: Path) -> None:
        self.new = queue / "new"
        self.seen: set[str] = set()
        self.count: dict[str, int] = {}  # In-Reply-To -> replies received
        self.first: dict[str, float] = {}  # In-Reply-To -> when its first reply was written (wall clock)
        self.lock = threading.Lock()

    def scan(self) -> dict[str, int]:
        with self.lock:
            try:
                names = os.listdir(self.new)
            except FileNotFoundError:
                return dict(self.count)
            for name in names:
                if name in self.seen:
                    continue
                path = self.new / name
                try:
                    written = path.stat().st_mtime
                    head = BytesHeaderParser(policy=compat32).parsebytes(path.read_bytes())
                except FileNotFoundError:
                    continue
                self.seen.add(name)
                ref = str(head.get("In-Reply-To") or "").strip()
                self.count[ref] = self.count.get(ref, 0) + 1
                self.first[ref] = min(self.first.get(ref, written), written)
            return dict(self.count)


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


class FirstJobs(threading.Thread):
    """When each rq worker started its first job after ``since`` (rq keeps a finished job's hash, with
    its worker and start time, for 30 s: read every 0.2 s). A worker still waiting for Redis starts none."""

    def __init__(self, url: str, since: float) -> None:
        super().__init__(daemon=True)
        self.conn = redis.Redis.from_url(url, socket_timeout=5)
        self.since = since
        self.first: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            try:
                self.look()
            except redis.RedisError:
                continue

    def look(self) -> None:
        pipe = self.conn.pipeline(transaction=False)
        keys = list(self.conn.scan_iter(match="rq:job:*", count=1000))
        for key in keys:
            pipe.hmget(key, "worker_name", "started_at")
        for worker, started in pipe.execute():
            if not worker or not started:
                continue
            at = datetime.strptime(started.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            when = at.timestamp()
            if when >= self.since and when < self.first.get(worker.decode(), float("inf")):
                self.first[worker.decode()] = when


def test_a_minute_without_redis_under_load_drains_at_once_when_it_is_back(pipeline: Pipeline) -> None:
    began = time.monotonic()
    root = pipeline.root
    replies = Replies(root / "run" / "queue")
    ledger = Ledger()
    run = uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(SENDERS) as pool:
        senders = [pool.submit(session, ledger, pipeline.ports["receiver"], c, PER_SENDER, run, pause=PAUSE,
                               deadline=400) for c in range(SENDERS)]
        wait_for(lambda: len(replies.scan()) >= 2 * SENDERS, 90, 0.2, "mail answered before the outage")

        before = ledger.accepted()
        pipeline.ctl("stop", "redis")
        assert not redis_answers(pipeline.redis_url)
        down_at = time.monotonic()
        # Mail keeps being accepted (into the Maildir spool) all the while.
        wait_for(lambda: len(ledger.accepted()) >= len(before) + 10 * SENDERS, OUTAGE, 0.2,
                 "mail accepted while Redis is down")
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))  # the rest of the outage: its length is the test
        during = ledger.accepted()
        backlog = during - before - set(replies.scan())

        up: list[float] = []

        def watch() -> None:  # when Redis answers again, to the ~20 ms
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not redis_answers(pipeline.redis_url):
                time.sleep(0.02)
            up.append(time.time())

        watcher = threading.Thread(target=watch)
        watcher.start()
        pipeline.ctl("start", "redis")  # the same port, from its AOF
        watcher.join()
        assert up and redis_answers(pipeline.redis_url), "Redis did not come back"
        back_at = up[0]
        outage = time.monotonic() - down_at
        jobs = FirstJobs(pipeline.redis_url, back_at)
        jobs.start()

        def first_of_backlog() -> float | None:
            replies.scan()
            times = [replies.first[m] for m in backlog if m in replies.first]
            return min(times) if times else None

        wait_for(lambda: first_of_backlog() is not None, 120, 0.1, "a reply to a message of the backlog")
        first = (first_of_backlog() or 0.0) - back_at
        wait_for(lambda: backlog <= set(replies.scan()), 180, 0.2, "a reply to every message of the backlog")
        whole = max(replies.first[m] for m in backlog) - back_at
        jobs.done.set()
        jobs.join()
        jobs.look()
        resumed = {worker.split(".")[1] + "." + worker.split(".")[3]: round(at - back_at, 1)
                   for worker, at in sorted(jobs.first.items())}
        for sender in senders:
            sender.result()

    accepted = ledger.accepted()
    assert accepted == set(ledger.codes), "every message was accepted in the end"
    wait_for(lambda: accepted <= set(replies.scan()), 180, 0.2, "a reply to every accepted message")
    counts = replies.scan()
    lost = accepted - set(counts)
    doubled = {m: n for m, n in counts.items() if n > 1}
    parked = maildir.keys(root / "run" / "bounced") + maildir.keys(root / "run" / "undeliverable")
    print(f"\n{len(accepted)} accepted ({len(during - before)} during the {outage:.0f} s outage, "
          f"{len(backlog)} waiting for Redis); the backlog's first reply {first:.1f} s after Redis answered, "
          f"all of it {whole:.1f} s after; first job of each worker (role.pid: s after Redis answered) "
          f"{resumed}; {len(lost)} lost, {len(doubled)} answered twice, {len(parked)} parked; "
          f"whole test {time.monotonic() - began:.0f} s")
    assert len(backlog) >= 10 * SENDERS
    # Every worker back at work: 2 routers and the relay, each within seconds (not rq's backoff of up to 60 s).
    assert sorted(role.split(".")[0] for role in resumed) == ["relay", "router", "router"], resumed
    assert max(resumed.values()) <= WORKERS_BACK_WITHIN, resumed
    assert not lost and not doubled and not parked, (lost, doubled, parked)
    assert first <= FIRST_REPLY_WITHIN, f"the backlog started draining {first:.1f} s after Redis was back"
    assert pipeline.ctl("status").count("RUNNING") == 8, pipeline.ctl("status")  # no process gave up


# -- the sweep itself -------------------------------------------------------------------------------


def spooled_at(spool: MaildirSpool, sender: str, age: float) -> str:
    """A message spooled ``age`` seconds ago with no wake-up (as if accepted while Redis was down)."""
    key = spool.put(Envelope(sender, ("bot@test.com",)), b"From: " + sender.encode() + b"\r\nSubject: s\r\n\r\nhi\r\n")
    then = time.time() - age
    os.utime(spool.path / "new" / key, (then, then))
    return key


def woken(conn: redis.Redis, names: Names) -> list[str]:
    return [key for job in rqcompat.queue(conn, names.queue("incoming")).jobs for key in job.args[0]]


def test_waiting_mail_is_woken_whatever_the_queue_holds_and_all_of_it_once_redis_is_back(
        tmp_path: Path, redis_conn: redis.Redis) -> None:
    settings = SimpleNamespace(**{**DEFAULTS, "spool_dir": str(tmp_path / "spool"), "namespace": "t",
                                  "undeliverable_dir": str(tmp_path / "undeliverable")})
    names = Names("t")
    ctx = context.Context(settings=settings, conn=redis_conn, names=names, worker_id="t.router.h.1.test")
    liveness = Liveness(redis_conn, names, ctx.worker_id)
    spool = ctx.spool("incoming")
    assert isinstance(spool, MaildirSpool)
    old = [spooled_at(spool, f"a{i}@client.test", 60) for i in range(3)]
    # The queue is not empty: wake-ups sent since Redis came back, for other mail (or stale ones).
    queues.wake_router(redis_conn, names, "incoming", ["someone-elses-key"])
    assert sweeper.sweep(ctx, "incoming", liveness, grace=10, interval=15) == 3
    assert sorted(woken(redis_conn, names)) == sorted([*old, "someone-elses-key"])
    assert ctx.lines("incoming").head("a0@client.test") == old[0]  # in its sender's line, as the receiver does

    # Another worker's sweep right after: nothing more (the group was woken less than 0.8 interval ago).
    assert sweeper.sweep(ctx, "incoming", liveness, grace=10, interval=15) == 0

    # Redis is back after an outage: a catch-up wakes every due message, however recent...
    recent = spooled_at(spool, "b@client.test", 1)
    later = spool.put(Envelope("c@client.test", ("bot@test.com",)), b"Subject: r\r\n\r\nretry\r\n")
    claimed = spool.claim(later, "t.router.h.2.other")
    assert claimed is not None
    spool.release(claimed, "t.router.h.2.other", delay=600)  # ...but not a retry before its time
    rqcompat.queue(redis_conn, names.queue("incoming")).empty()
    assert sweeper.sweep(ctx, "incoming", liveness, grace=10, interval=15, catch_up=True) == 4
    assert sorted(woken(redis_conn, names)) == sorted([*old, recent])


def test_a_worker_waiting_for_redis_is_back_within_two_seconds_of_its_return(tmp_path: Path) -> None:
    """The probe a worker runs while Redis is away (lamson.workerbase.wait_for_redis), on the client
    every stage uses: 9 s down (a backoff doubling from 1 s would next try at 15 s), then back on the
    same port from its AOF; the probe must see it within 2 s."""
    port = free_port()
    with redis_server(tmp_path / "redis", port=port) as (url, proc):
        conn = connect(url)
        conn.set("before", b"1")
        stop_process(proc)
    stop, returned = threading.Event(), []

    def probe() -> None:
        returned.append((wait_for_redis(conn, stop, probe="t:probe:test"), time.monotonic()))

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        time.sleep(9)  # the outage: its length is the test
        assert prober.is_alive()  # still waiting, not given up
        with redis_server(tmp_path / "redis", port=port):
            wait_for(lambda: redis_answers(url), 20, 0.02, "Redis answering again")
            back = time.monotonic()
            prober.join(10)
            assert returned and returned[0][0] is True
            assert returned[0][1] - back <= 2.0, f"the probe saw Redis {returned[0][1] - back:.1f} s after it was back"
            assert conn.get("before") == b"1" and conn.get("t:probe:test") == b"1"
    finally:
        stop.set()
        prober.join(10)
