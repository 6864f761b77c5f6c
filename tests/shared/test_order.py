"""Per-sender lines (lamson.order) and worker liveness (lamson.liveness) against a real Redis."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import redis

from lamson import liveness, maildir
from lamson.liveness import Liveness, WorkerId, new_worker_id
from lamson.names import Names
from lamson.order import Lines


def test_a_line_is_in_acceptance_order_whoever_adds(redis_conn: redis.Redis) -> None:
    lines = Lines(redis_conn, Names("t"))
    keys = [maildir.new_key() for _ in range(4)]
    lines.add([(keys[2], "A@X.org"), (keys[0], "a@x.org")])
    lines.add([(keys[1], "a@x.org"), (keys[0], "a@x.org"), (keys[3], "b@x.org")])  # the sweeper adding again
    assert lines.head("a@x.org") == keys[0] and lines.head("b@x.org") == keys[3]
    assert lines.done("a@x.org", keys[0]) == keys[1]
    assert lines.done("a@x.org", keys[1]) == keys[2]
    assert lines.done("a@x.org", keys[2]) is None
    assert redis_conn.ttl(lines.prefix + "b@x.org") > 0


def test_the_null_sender_has_no_line(redis_conn: redis.Redis) -> None:
    lines = Lines(redis_conn, Names("t"))
    lines.add([(maildir.new_key(), "")])
    assert lines.head("") is None and redis_conn.dbsize() == 0


def test_namespaces_keep_lines_apart(redis_conn: redis.Redis) -> None:
    Lines(redis_conn, Names("one")).add([(maildir.new_key(), "a@x.org")])
    assert Lines(redis_conn, Names("two")).head("a@x.org") is None


def test_worker_ids_are_unique_and_parse() -> None:
    a, b = new_worker_id(Names("app"), "router"), new_worker_id(Names("app"), "router")
    assert a != b and a.startswith("app.router.")
    parsed = WorkerId.parse(a)
    assert parsed is not None and parsed.pid == os.getpid() and parsed.role == "router"
    assert WorkerId.parse("nonsense") is None


def test_a_dead_process_on_this_host_is_dead_at_once(redis_conn: redis.Redis) -> None:
    names = Names("t")
    me = Liveness(redis_conn, names, new_worker_id(names, "router"))
    me.beat()
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead_id = f"t.router.{liveness.this_host()}.{gone.pid}.abcdef"
    live_id = new_worker_id(names, "router")  # this very process: alive
    assert me.dead([dead_id, live_id, me.worker_id]) == {dead_id}


def test_elsewhere_dead_means_key_lapsed_and_judge_settled(redis_conn: redis.Redis,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    names = Names("t")
    other_alive, other_dead = "t.router.otherhost.1.aaaaaa", "t.router.otherhost.2.bbbbbb"
    Liveness(redis_conn, names, other_alive).beat()
    me = Liveness(redis_conn, names, "t.router.myhost.3.cccccc")
    me.beat()
    old = {other_alive: time.time() - 100, other_dead: time.time() - 100}
    assert me.dead([other_alive, other_dead], claimed_since=old) == set()  # not settled: judges nobody
    monkeypatch.setattr(liveness, "SETTLE", 0.0)
    assert me.dead([other_alive, other_dead], claimed_since=old) == {other_dead}
    fresh = {other_dead: time.time()}
    assert me.dead([other_dead], claimed_since=fresh) == set()  # a claim younger than the TTL: wait


def test_losing_redis_restarts_the_settling(redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(liveness, "SETTLE", 0.0)
    me = Liveness(redis_conn, Names("t"), "t.router.h.1.a")
    assert me.beat() and me.settled
    me.conn = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert not me.beat() and not me.settled


def test_following_reads_a_line_ahead_and_leaves_it_in_one_go(redis_conn: redis.Redis) -> None:
    """A job following a line: handled keys stay at its head until it reads again or flushes."""
    from lamson.order import Following

    lines = Lines(redis_conn, Names("t"))
    keys = [maildir.new_key() for _ in range(5)]
    lines.add([(key, "a@x.org") for key in keys])
    following = Following(lines, read_ahead=3)
    assert following.done("a@x.org", keys[0]) == keys[1]  # read: keys 1, 2, 3; key 0 left the line
    assert lines.head("a@x.org") == keys[1]
    assert following.done("a@x.org", keys[1]) == keys[2]  # from what was read ahead
    assert following.done("a@x.org", keys[2]) == keys[3]
    assert lines.head("a@x.org") == keys[1]  # to other workers the job is still on keys[1]
    assert following.head("a@x.org") == keys[3]  # as others will see it from now on
    assert lines.head("a@x.org") == keys[3]
    assert following.done("a@x.org", keys[3]) == keys[4]
    following.flush()
    assert lines.head("a@x.org") == keys[4]
    assert following.done("a@x.org", keys[4]) is None and lines.head("a@x.org") is None
    assert following.done("", "x") is None  # the null sender has no line
