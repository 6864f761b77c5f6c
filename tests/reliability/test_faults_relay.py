"""Smart host trouble: down, hanging, 4xx until the lifetime runs out, 5xx; one DSN, never to <>."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.policy import default

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from lamson import queues
from lamson.mail import MailRequest
from lamson.relay import Relay, jobs
from lamson.relay.smtp import Connections
from tests.sink import Sink, smtp_sink
from tests.support import free_port

MESSAGE = (b"From: Lamson <app@test.com>\r\nTo: one@example.org\r\nSubject: news\r\n"
           b"Message-ID: <news.1@test.com>\r\n\r\nHello.\r\n")


@pytest.fixture(autouse=True)
def relay_policy() -> Iterator[None]:
    """Short timeouts for these tests; the process-wide defaults back afterwards."""
    jobs.CONNECTIONS.close_all()
    jobs.CONNECTIONS = Connections(timeout=1)
    lifetime = jobs.LIFETIME
    yield
    jobs.CONNECTIONS.close_all()
    jobs.CONNECTIONS = Connections()
    jobs.LIFETIME = lifetime


def work(conn: redis.Redis) -> None:
    SimpleWorker([Queue(queues.OUTGOING, connection=conn)], connection=conn).work(burst=True, with_scheduler=True)


def work_until(conn: redis.Redis, done: Callable[[], object], timeout: float = 30) -> None:
    """Run the relay in this process (due retries included) until ``done()``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        work(conn)
        if done():
            return
        time.sleep(0.2)
    raise AssertionError(f"not done after {timeout}s")


NULL = ("", "<>")  # aiosmtpd reports MAIL FROM:<> as "<>"


def dsns(sink: Sink) -> list:
    return [m for m in sink.messages if m.mail_from in NULL]


def check_dsn(received, recipient: str, status_class: str) -> None:
    """One RFC 3464 report from <> to the original sender, about ``recipient``."""
    assert received.mail_from in NULL and received.rcpt_tos == ["app@test.com"]
    report = message_from_bytes(received.data, policy=default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert str(report["In-Reply-To"]) == "<news.1@test.com>"
    analysis = MailRequest("127.0.0.1", "", "app@test.com", received.data).bounce
    assert analysis.kind == "dsn" and analysis.action == "failed"
    assert analysis.final_recipient == recipient and analysis.status.startswith(status_class)


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung smart host)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_smart_host_down_is_retried_then_delivered(redis_conn: redis.Redis) -> None:
    port = free_port()
    job_id = Relay(port=port, connection=redis_conn, retries=[1, 1, 1]).deliver(MESSAGE)
    work(redis_conn)
    assert Job.fetch(job_id, connection=redis_conn).get_status() == "scheduled"
    # The smart host comes back on the port the job is waiting for.
    with smtp_sink_on(port) as sink:
        work_until(redis_conn, lambda: sink.messages)
        assert [m.rcpt_tos for m in sink.messages] == [["one@example.org"]]


@contextmanager
def smtp_sink_on(port: int) -> Iterator[Sink]:
    from tests.sink import CountingController

    sink = Sink(port=port)
    controller = CountingController(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def test_hanging_smart_host_is_bounded_by_the_relay_timeout(redis_conn: redis.Redis) -> None:
    with silent_server() as port:
        job_id = Relay(port=port, connection=redis_conn, retries=[60]).deliver(MESSAGE)
        started = time.monotonic()
        work(redis_conn)
        elapsed = time.monotonic() - started
    assert elapsed < 20, elapsed  # relay_timeout (1 s here) bounds it, not the server
    job = Job.fetch(job_id, connection=redis_conn)
    assert job.get_status() == "scheduled"  # to be retried later, not failed, not hung


def test_4xx_is_retried_with_backoff_then_one_dsn_after_the_lifetime(redis_conn: redis.Redis) -> None:
    jobs.LIFETIME = 3
    with smtp_sink(rcpt_replies={"one@example.org": "451 4.3.0 try again later"}) as sink:
        # Two retries of 1 s run out before the 3 s lifetime: the message is rescheduled, not failed.
        Relay(port=sink.port, connection=redis_conn, retries=[1, 1]).deliver(MESSAGE)
        work_until(redis_conn, lambda: dsns(sink))
        assert sink.attempts >= 1 and sink.connections >= 1
        assert len(dsns(sink)) == 1
        check_dsn(dsns(sink)[0], "one@example.org", "4.")
        assert "451 4.3.0 try again later" in dsns(sink)[0].data.decode()
        time.sleep(1.2)
        work(redis_conn)
        assert len(dsns(sink)) == 1 and [m for m in sink.messages if m.mail_from not in NULL] == []
    failed = FailedJobRegistry(queues.OUTGOING, connection=redis_conn).get_job_ids()
    assert len(failed) == 1  # what bounced stays visible to rq info
    assert ScheduledJobRegistry(queues.OUTGOING, connection=redis_conn).get_job_ids() == []


def test_5xx_one_attempt_one_dsn_from_null_sender_and_none_on_requeue(redis_conn: redis.Redis) -> None:
    with smtp_sink(rcpt_replies={"one@example.org": "550 5.1.1 no such user"}) as sink:
        job_id = Relay(port=sink.port, connection=redis_conn, retries=[1, 1]).deliver(MESSAGE)
        work_until(redis_conn, lambda: dsns(sink))
        time.sleep(1.2)
        work(redis_conn)
        assert len(dsns(sink)) == 1
        check_dsn(dsns(sink)[0], "one@example.org", "5.1.1")
        registry = FailedJobRegistry(queues.OUTGOING, connection=redis_conn)
        assert registry.get_job_ids() == [job_id]
        # An operator sends it back: one more attempt, still no second notification.
        registry.requeue(job_id)
        work(redis_conn)
        assert len(dsns(sink)) == 1
        assert registry.get_job_ids() == [job_id]


def test_no_dsn_for_mail_from_the_null_sender(redis_conn: redis.Redis) -> None:
    with smtp_sink(rcpt_replies={"one@example.org": "550 5.1.1 no such user"}) as sink:
        jobs.LIFETIME = 0  # and none for an expired one either
        Relay(port=sink.port, connection=redis_conn, retries=[1]).deliver(MESSAGE, From="")
        Relay(port=sink.port, connection=redis_conn, retries=[1]).deliver(MESSAGE, From="", To="two@example.org")
        sink.rcpt_replies["two@example.org"] = "451 4.2.0 busy"
        work(redis_conn)
        time.sleep(1.2)
        work(redis_conn)
        assert sink.messages == []
    assert len(FailedJobRegistry(queues.OUTGOING, connection=redis_conn)) == 2


def test_partial_refusal_notifies_only_about_the_refused_recipient(redis_conn: redis.Redis) -> None:
    with smtp_sink(rcpt_replies={"bad@example.org": "550 5.1.1 no such user"}) as sink:
        Relay(port=sink.port, connection=redis_conn, retries=[1]).deliver(MESSAGE, To=["one@example.org",
                                                                                    "bad@example.org"])
        work_until(redis_conn, lambda: dsns(sink))
        assert [m.rcpt_tos for m in sink.messages if m.mail_from not in NULL] == [["one@example.org"]]
        assert len(dsns(sink)) == 1
        check_dsn(dsns(sink)[0], "bad@example.org", "5.1.1")
