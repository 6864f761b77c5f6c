"""Relay client and delivery job against a real local SMTP sink and a real Redis."""

from __future__ import annotations

import time

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry

from lamson import queues
from lamson.relay import Relay, envelope_of, jobs
from lamson.relay.client import strip_bcc
from lamson.relay.smtp import Connections, normalise_eol
from tests.sink import smtp_sink

MESSAGE = (b"From: Lamson <app@test.com>\r\nTo: one@example.org, Two <two@example.org>\r\n"
           b"Cc: three@example.org\r\nBcc: hidden@example.org\r\nSubject: hi\r\n\r\nline one\nline two\rline three\r\n")


@pytest.fixture(autouse=True)
def fresh_connections() -> None:
    jobs.CONNECTIONS.close_all()
    jobs.CONNECTIONS = Connections(timeout=10)


def work(conn: redis.Redis) -> None:
    """Run every queued delivery (and due retries) in this process, then return."""
    SimpleWorker([Queue(queues.OUTGOING, connection=conn)], connection=conn).work(burst=True, with_scheduler=True)


def test_envelope_comes_from_headers_and_bcc_is_not_sent() -> None:
    sender, rcpts = envelope_of(MESSAGE)
    assert sender == "app@test.com"
    assert rcpts == ["one@example.org", "two@example.org", "three@example.org", "hidden@example.org"]
    stripped = strip_bcc(MESSAGE)
    assert b"Bcc" not in stripped and b"hidden" not in stripped and b"Cc: three@example.org" in stripped


def test_deliver_only_enqueues(redis_conn: redis.Redis) -> None:
    relay = Relay(host="127.0.0.1", port=1, connection=redis_conn)
    job_id = relay.deliver(MESSAGE)
    queue = Queue(queues.OUTGOING, connection=redis_conn)
    assert queue.job_ids == [job_id]
    job = queue.fetch_job(job_id)
    data, sender, rcpts = job.args
    assert sender == "app@test.com" and len(rcpts) == 4 and b"hidden" not in data
    assert job.kwargs == {"host": "127.0.0.1", "port": 1}


def test_envelope_overrides_and_null_sender(redis_conn: redis.Redis) -> None:
    relay = Relay(connection=redis_conn)
    job = Queue(queues.OUTGOING, connection=redis_conn).fetch_job(relay.deliver(MESSAGE, To="x@example.org", From=""))
    assert job.args[1:] == ("", ["x@example.org"])
    with pytest.raises(ValueError):
        relay.deliver(MESSAGE, To="x@example.org\r\nRCPT TO:<evil@example.org>")


def test_delivery_normalises_line_endings_and_keeps_the_session(redis_conn: redis.Redis) -> None:
    with smtp_sink() as sink:
        relay = Relay(host="127.0.0.1", port=sink.port, connection=redis_conn)
        relay.deliver(MESSAGE)
        relay.deliver(MESSAGE.replace(b"Subject: hi", b"Subject: again"))
        work(redis_conn)
        assert len(sink.messages) == 2
        assert sink.connections == 1  # one kept-open session for both jobs
        for received in sink.messages:
            assert received.mail_from == "app@test.com"
            assert b"line one\r\nline two\r\nline three\r\n" in received.data
            body = received.data.replace(b"\r\n", b"")
            assert b"\r" not in body and b"\n" not in body  # no bare CR or LF anywhere


def test_normalise_eol() -> None:
    assert normalise_eol(b"a\nb\rc\r\nd\n\r") == b"a\r\nb\r\nc\r\nd\r\n\r\n"


def test_451_is_retried_then_delivered(redis_conn: redis.Redis) -> None:
    with smtp_sink(replies=["451 4.3.0 try later"]) as sink:
        relay = Relay(host="127.0.0.1", port=sink.port, connection=redis_conn, retries=[1, 1])
        relay.deliver(MESSAGE)
        work(redis_conn)  # first attempt: 451, the job is scheduled again
        assert sink.attempts == 1 and sink.messages == []
        time.sleep(1.5)
        work(redis_conn)  # the retry is due: delivered
        assert sink.attempts == 2 and len(sink.messages) == 1
        assert len(FailedJobRegistry(queues.OUTGOING, connection=redis_conn)) == 0


def test_smart_host_down_is_retried(redis_conn: redis.Redis) -> None:
    with smtp_sink() as sink:
        port = sink.port
    relay = Relay(host="127.0.0.1", port=port, connection=redis_conn, retries=[30])
    job_id = relay.deliver(MESSAGE)
    work(redis_conn)
    job = Queue(queues.OUTGOING, connection=redis_conn).fetch_job(job_id)
    assert job.get_status() == "scheduled"  # waiting for its retry, not failed, not lost


def test_5xx_is_not_retried_and_bounces_once(redis_conn: redis.Redis) -> None:
    with smtp_sink(replies=["554 5.7.1 no thanks"]) as sink:
        relay = Relay(host="127.0.0.1", port=sink.port, connection=redis_conn, retries=[1, 1, 1])
        relay.deliver(MESSAGE)
        work(redis_conn)
        time.sleep(1.2)
        work(redis_conn)
        # One refused attempt, then the delivery status notification, sent from <>.
        assert sink.attempts == 2 and [m.mail_from for m in sink.messages] == ["<>"]
        assert len(FailedJobRegistry(queues.OUTGOING, connection=redis_conn)) == 1


def test_deferred_recipients_get_their_own_job(redis_conn: redis.Redis) -> None:
    with smtp_sink(rcpt_replies={"two@example.org": "450 4.2.0 mailbox busy"}) as sink:
        relay = Relay(host="127.0.0.1", port=sink.port, connection=redis_conn, retries=[1])
        relay.deliver(MESSAGE, To=["one@example.org", "two@example.org"])
        work(redis_conn)
        assert [m.rcpt_tos for m in sink.messages] == [["one@example.org"]]
        sink.rcpt_replies.clear()
        time.sleep(1.5)
        work(redis_conn)
        assert [m.rcpt_tos for m in sink.messages] == [["one@example.org"], ["two@example.org"]]
