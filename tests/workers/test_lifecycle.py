"""The routing job on the spool's lifecycle, in-process: order, outbox commit, attempts, parking."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from lamson import queues, rqcompat
from lamson.envelope import Envelope
from lamson.names import Names
from lamson.order import Lines
from lamson.router import ConversationBusy, Router
from lamson.runtime import Runtime
from lamson.settings import DEFAULTS
from lamson.workers import jobs, routing_job
from tests.support import router_runtime
from tests.workers import lifecycle_handlers as handlers


@pytest.fixture
def ctx(tmp_path: Path, redis_conn: redis.Redis) -> Iterator[Runtime]:
    handlers.CALLS.clear()
    handlers.FAIL.clear()
    with router_runtime(tmp_path, redis_conn, ["tests.workers.lifecycle_handlers"], namespace="t",
                        worker_id="t.router.h.1.me", route_retries=[30], max_attempts=3) as runtime:
        yield runtime


def accept(c: Runtime, subject: str, sender: str = "a@example.org") -> str:
    """What the receiver does: spool, then join the sender's line."""
    data = f"From: {sender}\r\nTo: bot@test.com\r\nSubject: {subject}\r\n\r\nhi\r\n".encode()
    key = c.spool().put(Envelope(sender, ("bot@test.com",)), data)
    c.lines().add([(key, sender)])
    return key


def test_routed_message_leaves_the_spool_after_its_reply_is_in_the_outbox(ctx: Runtime) -> None:
    key = accept(ctx, "one")
    assert jobs.route(ctx, [key]) == "1 routed"
    assert handlers.CALLS == ["one"]
    assert ctx.spool().where(key) is None and ctx.spool().claims() == []
    (reply,) = ctx.outbox.waiting()
    assert b"Subject: Re: one" in ctx.outbox.get(reply).data
    assert ctx.outbox.get(reply).envelope.rcpt_tos == ("a@example.org",)
    assert rqcompat.length(ctx.conn, ctx.names.outgoing) == 1  # one wake-up for the relay
    assert jobs.route(ctx, [key]) == "nothing waiting"  # a duplicate wake-up does nothing


def test_one_senders_messages_in_acceptance_order_whatever_the_wake_ups(ctx: Runtime) -> None:
    keys = [accept(ctx, f"m{i}") for i in range(6)]
    other = accept(ctx, "x0", sender="b@example.org")
    jobs.route(ctx, [keys[4], other, keys[2]])  # the older waiting ones go first, and the line is followed
    assert handlers.CALLS == ["m0", "m1", "m2", "m3", "m4", "m5", "x0"]


def test_a_message_waits_behind_an_older_one_in_another_workers_hands(ctx: Runtime) -> None:
    first, second, third = (accept(ctx, f"m{i}") for i in range(3))
    held = ctx.spool().claim(first, "t.router.h.2.other")
    assert jobs.route(ctx, [second, third]) == "2 waiting behind an older message"
    assert handlers.CALLS == [] and ctx.spool().where(second) == "waiting"
    # The other worker finishes m0 (as its job would) and takes the next in line: m1, then m2 follows.
    ctx.spool().finish(first, "t.router.h.2.other")
    nxt = ctx.lines().done(held.envelope.mail_from, first)
    assert nxt == second
    jobs.route(ctx, [nxt])
    assert handlers.CALLS == ["m1", "m2"]


def test_a_stale_line_entry_does_not_block(ctx: Runtime) -> None:
    key = accept(ctx, "m1")
    ctx.lines().add([("1.M1P1Q1.gone", "a@example.org")])  # older, and no such message any more
    jobs.route(ctx, [key])
    assert handlers.CALLS == ["m1"]


def test_a_parked_message_does_not_block_those_after_it(ctx: Runtime) -> None:
    handlers.FAIL.add("bad")
    bad, good = accept(ctx, "bad"), accept(ctx, "good")
    jobs.route(ctx, [bad, good])
    assert handlers.CALLS == ["bad", "good"]
    (parked,) = Router.UNDELIVERABLE_QUEUE.keys()
    assert b"handler fails on bad" in Router.UNDELIVERABLE_QUEUE.get_bytes(parked)


def test_errors_outside_the_handlers_cost_attempts_then_park(ctx: Runtime,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    key = accept(ctx, "m1")
    later = accept(ctx, "m2")

    def broken(message):  # type: ignore[no-untyped-def]
        if message["subject"] == "m1":
            raise ValueError("mail model bug")
        return real(message)

    real = Router.dispose
    monkeypatch.setattr(Router, "dispose", broken)
    assert jobs.route(ctx, [key, later]) == "1 retry, 1 waiting behind an older message"
    assert ctx.spool().get(key).envelope.attempts == 1 and handlers.CALLS == []  # m2 waits behind m1
    jobs.route(ctx, [key])
    outcome = jobs.route(ctx, [key])  # the third attempt of max_attempts=3: parked, and m2 goes on
    assert "parked" in outcome and handlers.CALLS == ["m2"]
    parked = list((Path(ctx.settings.undeliverable_dir) / "new").iterdir())
    assert len(parked) == 1 and b"ValueError outside the handlers: mail model bug" in parked[0].read_bytes()


def test_busy_conversation_waits_without_costing_an_attempt(ctx: Runtime,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    key = accept(ctx, "m1")

    def busy(message):  # type: ignore[no-untyped-def]
        raise ConversationBusy("held elsewhere", 10.0)

    monkeypatch.setattr(Router, "dispose", busy)
    assert jobs.route(ctx, [key]) == "1 busy"
    got = ctx.spool().get(key)
    assert ctx.spool().where(key) == "waiting" and got.envelope.attempts == 0
    assert ctx.conn.zcard("rq:scheduled:" + ctx.names.incoming) == 1  # a delayed wake-up (rq's scheduler)


def test_a_message_at_its_attempt_limit_is_parked_with_the_reason(ctx: Runtime) -> None:
    data = b"From: a@example.org\r\nTo: bot@test.com\r\nSubject: s\r\n\r\nhi\r\n"
    key = ctx.spool().put(Envelope("a@example.org", ("bot@test.com",), attempts=3), data)
    assert jobs.route(ctx, [key]) == "1 parked"
    (parked,) = (Path(ctx.settings.undeliverable_dir) / "new").iterdir()
    assert b"X-Lamson-Reason: 3 attempts failed" in parked.read_bytes()


def test_a_drain_takes_the_oldest_waiting(ctx: Runtime) -> None:
    for i in range(3):
        accept(ctx, f"m{i}")
    jobs.route(ctx, [])
    assert handlers.CALLS == ["m0", "m1", "m2"]


def test_malformed_wake_ups_are_dropped(ctx: Runtime) -> None:
    assert jobs.route(ctx, "not a list") == "malformed"  # type: ignore[arg-type]
    assert jobs.route(ctx, ["../../etc/passwd"]) == "nothing waiting"


def test_lines_and_queues_are_per_namespace(ctx: Runtime) -> None:
    key = accept(ctx, "m1")
    assert Lines(ctx.conn, Names("other")).head("a@example.org") is None
    queues.wake_router(ctx.conn, ctx.names, "incoming", [key])
    assert rqcompat.length(ctx.conn, "t-incoming") == 1 and rqcompat.length(ctx.conn, "lamson-incoming") == 0


def test_a_message_that_stepped_back_and_was_taken_again_runs_once(ctx: Runtime,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = accept(ctx, "m0"), accept(ctx, "m1")
    held = ctx.spool().claim(first, "t.router.h.2.other")
    real_release = ctx.spool().release

    def release_then_other_finishes(spooled, worker, **kw):  # type: ignore[no-untyped-def]
        done = real_release(spooled, worker, **kw)
        # The other worker finishes m0 in the window between stepping back and looking again.
        ctx.spool().finish(first, "t.router.h.2.other")
        ctx.lines().done(held.envelope.mail_from, first)
        return done

    monkeypatch.setattr(ctx.spool(), "release", release_then_other_finishes)
    jobs.route(ctx, [second])
    assert handlers.CALLS == ["m1"]  # once, not twice


def test_a_long_line_is_handed_on_with_a_wake_up(ctx: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing_job, "MAX_CHAIN", 2)
    keys = [accept(ctx, f"m{i}") for i in range(5)]
    jobs.route(ctx, [keys[0]])
    assert handlers.CALLS == ["m0", "m1", "m2"]  # itself, then two followed
    (job,) = rqcompat.queue(ctx.conn, ctx.names.incoming).jobs
    assert job.args == [[keys[3]], "incoming"]  # the rest is not left for the sweeper
    jobs.route(ctx, job.args[0])
    assert handlers.CALLS == ["m0", "m1", "m2", "m3", "m4"]


def test_a_fan_out_of_a_thousand_replies_costs_a_handful_of_wake_ups(ctx: Runtime) -> None:
    data = b"From: a@example.org\r\nTo: fanout@test.com\r\nSubject: post\r\n\r\nhi\r\n"
    key = ctx.spool().put(Envelope("a@example.org", ("fanout@test.com",)), data)
    assert jobs.route(ctx, [key]) == "1 routed"
    assert len(ctx.outbox.waiting()) == 1000
    wake_ups = rqcompat.queue(ctx.conn, ctx.names.outgoing).jobs
    assert len(wake_ups) == 10 and sum(len(job.args[0]) for job in wake_ups) == 1000


def test_a_stopping_worker_finishes_the_message_in_hand_and_hands_the_rest_back(
        ctx: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [accept(ctx, f"m{i}", sender=f"s{i}@example.org") for i in range(4)]
    real = Router.dispose

    def stop_after_first(message):  # type: ignore[no-untyped-def]
        ctx.stopping = True  # SIGTERM arrives while the first message is handled
        return real(message)

    monkeypatch.setattr(Router, "dispose", stop_after_first)
    assert jobs.route(ctx, keys) == "1 routed, 3 handed back"
    assert handlers.CALLS == ["m0"] and sorted(ctx.spool().waiting()) == sorted(keys[1:])
    assert ctx.spool().claims() == [] and ctx.spool().get(keys[1]).envelope.attempts == 0
    (job,) = rqcompat.queue(ctx.conn, ctx.names.incoming).jobs
    assert sorted(job.args[0]) == sorted(keys[1:])  # another worker is woken for them
    ctx.stopping = False


def test_a_burst_of_one_sender_reads_its_line_a_few_times_not_once_a_message(ctx: Runtime) -> None:
    from lamson import order

    keys = [accept(ctx, f"m{i}") for i in range(40)]
    before = ctx.conn.info("commandstats").get("cmdstat_zrange", {}).get("calls", 0)
    assert jobs.route(ctx, [keys[0]]) == "40 routed"
    reads = ctx.conn.info("commandstats")["cmdstat_zrange"]["calls"] - before
    assert handlers.CALLS == [f"m{i}" for i in range(40)]
    assert reads <= 40 // order.READ_AHEAD + 3  # its turn, each read ahead, the last; was one per message
    assert ctx.lines().head("a@example.org") is None and ctx.spool().waiting() == []


def test_a_worker_waiting_behind_a_job_that_reads_ahead_is_taken_next(ctx: Runtime,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """While a job is inside a burst, another worker's message of that sender steps back and the job takes it."""
    keys = [accept(ctx, f"m{i}") for i in range(6)]
    other = jobs.RoutingJob(ctx, ctx.group("incoming"))
    other.worker = other.order.worker = "t.router.h.2.other"
    seen: list[str | None] = []
    real = Router.dispose

    def meanwhile(message):  # type: ignore[no-untyped-def]
        done = real(message)
        if message["subject"] == "m2":  # another worker is woken for m4 now: it must wait its turn
            seen.append(other.run([keys[4]]))
        return done

    monkeypatch.setattr(Router, "dispose", meanwhile)
    assert jobs.route(ctx, [keys[0]]) == "6 routed"
    assert seen == ["1 waiting behind an older message"]
    assert handlers.CALLS == [f"m{i}" for i in range(6)]
    assert ctx.spool().waiting() == [] and ctx.spool().claims() == []


def test_a_wake_up_for_a_line_in_other_hands_claims_nothing(ctx: Runtime,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With the senders in the wake-up, keys behind another worker's message are not even claimed."""
    first = accept(ctx, "m0")
    later = [accept(ctx, f"m{i}") for i in (1, 2)]
    other = accept(ctx, "x", sender="b@example.org")
    assert ctx.spool().claim(first, "t.router.h.2.other") is not None  # another worker is on the line
    claimed: list[str] = []
    real = ctx.spool().claim

    def counting(key, worker):  # type: ignore[no-untyped-def]
        claimed.append(key)
        return real(key, worker)

    monkeypatch.setattr(ctx.spool(), "claim", counting)
    keys = [*later, other]
    assert jobs.route(ctx, keys, "incoming", ["a@example.org", "A@example.org", "b@example.org"]) == \
        "2 waiting behind an older message, 1 routed"
    assert claimed == [other] and handlers.CALLS == ["x"]
    assert sorted(ctx.spool().waiting()) == sorted(later)
    # A wrong or missing hint only costs the usual detour: claimed, seen behind m0, put back.
    assert jobs.route(ctx, later, "incoming", ["nobody@example.org", "nobody@example.org"]) == \
        "2 waiting behind an older message"
    assert jobs.route(ctx, later, "incoming", ["short"]) == "2 waiting behind an older message"
    assert sorted(ctx.spool().waiting()) == sorted(later)


def test_an_applications_admission_check_parks_with_its_reason(ctx: Runtime) -> None:
    ctx.configure(replace(ctx.config, admission_checks=["tests.workers.admission_checks.no_urgent"]))
    urgent, calm = accept(ctx, "URGENT"), accept(ctx, "calm", sender="b@example.org")
    assert jobs.route(ctx, [urgent, calm]) == "1 parked, 1 routed"
    assert handlers.CALLS == ["calm"]
    (parked,) = (Path(ctx.settings.undeliverable_dir) / "new").iterdir()
    assert b"X-Lamson-Reason: urgent mail is not for robots" in parked.read_bytes()


def test_a_check_that_raises_costs_an_attempt_and_strands_nothing(ctx: Runtime) -> None:
    ctx.configure(replace(ctx.config, admission_checks=["tests.workers.admission_checks.broken"]))
    key = accept(ctx, "m1")
    assert jobs.route(ctx, [key]) == "1 retry"
    assert ctx.spool().where(key) == "waiting" and ctx.spool().get(key).envelope.attempts == 1
    assert ctx.spool().claims() == []


def test_an_admission_check_that_does_not_import_is_a_clear_error() -> None:
    from lamson.typed_settings import Settings
    from lamson.workers import admission

    settings = Settings.of(SimpleNamespace(**{**DEFAULTS, "admission_checks": ["tests.workers.nowhere.check"]}))
    with pytest.raises(ValueError, match="admission_checks: cannot import 'tests.workers.nowhere.check'"):
        admission.checks(settings)
