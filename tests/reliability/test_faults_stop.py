"""Graceful stop: `supervisorctl stop` while jobs run lets them finish; nothing abandoned."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import redis
from rq import Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry

from lamson import maildir
from lamson.names import Names
from tests.e2e.conftest import Pipeline
from tests.reliability.ledger import Ledger, replies, session
from tests.support import wait_for


def test_stopping_workers_mid_traffic_abandons_nothing(pipeline: Pipeline) -> None:
    ledger = Ledger()
    run = uuid.uuid4().hex[:8]
    conn = redis.Redis.from_url(pipeline.redis_url)
    spool = pipeline.root / "run" / "spool"
    with ThreadPoolExecutor(5) as pool:
        # Clients keep sending while the workers are told to stop: the stop lands on live traffic.
        futures = [pool.submit(session, ledger, pipeline.ports["receiver"], c, 30, run, pause=0.05)
                   for c in range(5)]
        wait_for(lambda: len(ledger.accepted()) >= 40, 60, 0.05, "traffic under way")
        pipeline.ctl("stop", "router:*", "relay")  # SIGTERM: rq's warm shutdown finishes the job in hand
        for f in futures:
            f.result()
    assert len(ledger.accepted()) == 150
    assert maildir.keys(spool), "mail accepted while the workers were stopped waits in the spool"

    for q in (Names().incoming, Names().outgoing):
        assert StartedJobRegistry(q, connection=conn).get_job_ids() == [], q
        assert FailedJobRegistry(q, connection=conn).get_job_ids() == [], q
    assert Worker.all(connection=conn) == []  # each worker said goodbye (no registration left to expire)
    assert maildir.keys(spool, "cur") == []  # and left no claim behind
    assert conn.keys("lamson:alive:*") == []  # nor a liveness key

    pipeline.ctl("start", "router:*", "relay")
    queue = pipeline.root / "run" / "queue"
    wait_for(lambda: ledger.accepted() <= set(replies(queue)), 120, 0.5, "a reply to every message")
    wait_for(lambda: not maildir.keys(spool), 30, 0.2, "an empty spool")
    assert sum(replies(queue).values()) == 150  # a clean stop makes no duplicates
    conn.close()
