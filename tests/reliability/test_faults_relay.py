"""Smart host trouble: down, hanging, 4xx until the lifetime runs out, 5xx; one DSN, never to <>."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.policy import default

from lamson.mail import MailRequest
from lamson.requeue import requeue
from tests.relaykit import RelayKit
from tests.sink import Sink, smtp_sink
from tests.support import free_port

MESSAGE = (b"From: Lamson <app@test.com>\r\nTo: one@example.org\r\nSubject: news\r\n"
           b"Message-ID: <news.1@test.com>\r\n\r\nHello.\r\n")


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


def test_smart_host_down_is_retried_then_delivered(kit: RelayKit) -> None:
    port = free_port()
    key = kit.relay(port=port).deliver(MESSAGE)
    kit.work()
    assert kit.outbox.where(key) == "waiting"  # waiting for its retry, not failed, not lost
    # The smart host comes back on the port the message is waiting for.
    with smtp_sink_on(port) as sink:
        kit.work_until(lambda: sink.messages)
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


def test_hanging_smart_host_is_bounded_by_the_relay_timeout(kit: RelayKit) -> None:
    kit.settings.relay_retries = [60]
    with silent_server() as port:
        key = kit.relay(port=port).deliver(MESSAGE)
        started = time.monotonic()
        kit.work()
        elapsed = time.monotonic() - started
    assert elapsed < 20, elapsed  # relay_timeout (1 s here) bounds it, not the server
    assert kit.outbox.where(key) == "waiting" and not kit.outbox.is_due(key)  # retried later, not hung


def test_4xx_is_retried_with_backoff_then_one_dsn_after_the_lifetime(kit: RelayKit) -> None:
    kit.settings.relay_lifetime = 3
    with smtp_sink(rcpt_replies={"one@example.org": "451 4.3.0 try again later"}) as sink:
        # Retries every 1 s until the 3 s lifetime is over, then one notification.
        key = kit.relay(port=sink.port).deliver(MESSAGE)
        kit.work_until(lambda: dsns(sink))
        assert sink.attempts >= 1 and sink.connections >= 1
        assert len(dsns(sink)) == 1
        check_dsn(dsns(sink)[0], "one@example.org", "4.")
        assert "451 4.3.0 try again later" in dsns(sink)[0].data.decode()
        time.sleep(1.2)
        kit.work()
        assert len(dsns(sink)) == 1 and [m for m in sink.messages if m.mail_from not in NULL] == []
    assert kit.outbox.where(key) is None and kit.outbox.waiting() == []
    (parked,) = kit.bounced()  # what bounced stays visible, with the reason
    assert b"X-Lamson-Reason: expired after" in parked


def test_5xx_one_attempt_one_dsn_from_null_sender_and_none_on_requeue(kit: RelayKit) -> None:
    with smtp_sink(rcpt_replies={"one@example.org": "550 5.1.1 no such user"}) as sink:
        kit.relay(port=sink.port).deliver(MESSAGE)
        kit.work_until(lambda: dsns(sink))
        time.sleep(1.2)
        kit.work()
        assert len(dsns(sink)) == 1
        check_dsn(dsns(sink)[0], "one@example.org", "5.1.1")
        (parked,) = kit.bounced()
        # An operator sends it back: one more attempt, still no second notification.
        requeue(parked, kit.settings, kit.conn)
        kit.work()
        assert len(dsns(sink)) == 1
        assert len(kit.bounced()) == 2


def test_no_dsn_for_mail_from_the_null_sender(kit: RelayKit) -> None:
    kit.settings.relay_lifetime = 0  # and none for an expired one either
    with smtp_sink(rcpt_replies={"one@example.org": "550 5.1.1 no such user"}) as sink:
        relay = kit.relay(port=sink.port)
        relay.deliver(MESSAGE, From="")
        sink.rcpt_replies["two@example.org"] = "451 4.2.0 busy"
        relay.deliver(MESSAGE, From="", To="two@example.org")
        kit.work()
        time.sleep(1.2)
        kit.work()
        assert sink.messages == []
    assert len(kit.bounced()) == 2


def test_partial_refusal_notifies_only_about_the_refused_recipient(kit: RelayKit) -> None:
    with smtp_sink(rcpt_replies={"bad@example.org": "550 5.1.1 no such user"}) as sink:
        kit.relay(port=sink.port).deliver(MESSAGE, To=["one@example.org", "bad@example.org"])
        kit.work_until(lambda: dsns(sink))
        assert [m.rcpt_tos for m in sink.messages if m.mail_from not in NULL] == [["one@example.org"]]
        assert len(dsns(sink)) == 1
        check_dsn(dsns(sink)[0], "bad@example.org", "5.1.1")
    (parked,) = kit.bounced()
    assert b"bad@example.org" in parked.split(b"\r\n")[0] and b"one@example.org" not in parked.split(b"\r\n")[0]
