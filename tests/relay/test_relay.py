"""Relay client and delivery job against a real local SMTP sink and a real Redis."""

from __future__ import annotations

import time

import pytest

from lamson import context, rqcompat
from lamson.mail import MailRequest
from lamson.relay import envelope_of
from lamson.relay.client import strip_bcc
from lamson.relay.smtp import normalise_eol
from tests.relaykit import RelayKit
from tests.sink import smtp_sink

MESSAGE = (b"From: Lamson <app@test.com>\r\nTo: one@example.org, Two <two@example.org>\r\n"
           b"Cc: three@example.org\r\nBcc: hidden@example.org\r\nSubject: hi\r\n\r\nline one\nline two\rline three\r\n")


def test_envelope_comes_from_headers_and_bcc_is_not_sent() -> None:
    sender, rcpts = envelope_of(MESSAGE)
    assert sender == "app@test.com"
    assert rcpts == ["one@example.org", "two@example.org", "three@example.org", "hidden@example.org"]
    stripped = strip_bcc(MESSAGE)
    assert b"Bcc" not in stripped and b"hidden" not in stripped and b"Cc: three@example.org" in stripped


def test_forwarding_a_received_message_goes_to_its_envelope_recipient_only() -> None:
    received = MailRequest("127.0.0.1:1", "sender@example.org", "list@test.com", MESSAGE)
    assert envelope_of(received) == ("app@test.com", ["list@test.com"])  # never Cc/Bcc third parties


def test_deliver_writes_the_outbox_and_wakes_the_relay(kit: RelayKit) -> None:
    key = kit.relay(port=1).deliver(MESSAGE)
    spooled = kit.outbox.get(key)
    assert spooled.envelope.mail_from == "app@test.com" and len(spooled.envelope.rcpt_tos) == 4
    assert b"hidden" not in spooled.data
    assert spooled.envelope.extra["relay_host"] == "127.0.0.1" and spooled.envelope.extra["relay_port"] == "1"
    (job,) = rqcompat.queue(kit.conn, "t-outgoing").jobs
    assert job.args == [[key]]


def test_inside_a_worker_deliver_waits_for_the_batch_commit(kit: RelayKit) -> None:
    from lamson.relay import Relay

    key = Relay(port=1).deliver(MESSAGE)  # as a handler's settings.relay does, in a worker
    assert context.current().pending_outbox == [key]
    assert rqcompat.length(kit.conn, "t-outgoing") == 0  # woken by the routing batch's commit


def test_envelope_overrides_and_null_sender(kit: RelayKit) -> None:
    relay = kit.relay()
    key = relay.deliver(MESSAGE, To="x@example.org", From="")
    env = kit.outbox.get(key).envelope
    assert (env.mail_from, env.rcpt_tos) == ("", ("x@example.org",))
    with pytest.raises(ValueError):
        relay.deliver(MESSAGE, To="x@example.org\r\nRCPT TO:<evil@example.org>")


def test_delivery_normalises_line_endings_and_keeps_the_session(kit: RelayKit) -> None:
    with smtp_sink() as sink:
        relay = kit.relay(port=sink.port)
        relay.deliver(MESSAGE)
        relay.deliver(MESSAGE.replace(b"Subject: hi", b"Subject: again"))
        kit.work()
        assert len(sink.messages) == 2
        assert sink.connections == 1  # one kept-open session for both
        for received in sink.messages:
            assert received.mail_from == "app@test.com"
            assert b"line one\r\nline two\r\nline three\r\n" in received.data
            body = received.data.replace(b"\r\n", b"")
            assert b"\r" not in body and b"\n" not in body  # no bare CR or LF anywhere
    assert kit.outbox.waiting() == [] and kit.outbox.claims() == []


def test_normalise_eol() -> None:
    assert normalise_eol(b"a\nb\rc\r\nd\n\r") == b"a\r\nb\r\nc\r\nd\r\n\r\n"


def test_451_waits_in_the_outbox_then_is_delivered(kit: RelayKit) -> None:
    with smtp_sink(replies=["451 4.3.0 try later"]) as sink:
        key = kit.relay(port=sink.port).deliver(MESSAGE)
        kit.work()  # first attempt: 451, back in the outbox, due in 1 s
        assert sink.attempts == 1 and sink.messages == []
        assert kit.outbox.where(key) == "waiting" and kit.outbox.get(key).envelope.extra["tries"] == "1"
        time.sleep(1.5)
        kit.work()  # the delayed wake-up is due: delivered
        assert sink.attempts == 2 and len(sink.messages) == 1
    assert kit.outbox.where(key) is None and kit.bounced() == []


def test_smart_host_down_keeps_it_waiting(kit: RelayKit) -> None:
    kit.settings.relay_retries = [60]
    with smtp_sink() as sink:
        port = sink.port
    key = kit.relay(port=port).deliver(MESSAGE)
    kit.work()
    assert kit.outbox.where(key) == "waiting" and not kit.outbox.is_due(key)  # not failed, not lost


def test_5xx_is_parked_with_one_notification(kit: RelayKit) -> None:
    with smtp_sink(replies=["554 5.7.1 no thanks"]) as sink:
        kit.relay(port=sink.port).deliver(MESSAGE)
        kit.work_until(lambda: sink.attempts >= 2)
        # One refused attempt, then the delivery status notification, sent from <>.
        assert [m.mail_from for m in sink.messages] == ["<>"]
    (parked,) = kit.bounced()
    assert b"X-Lamson-Reason: refused by 127.0.0.1:" in parked and b"554 5.7.1 no thanks" in parked


def test_deferred_recipients_get_their_own_outbox_file(kit: RelayKit) -> None:
    with smtp_sink(rcpt_replies={"two@example.org": "450 4.2.0 mailbox busy"}) as sink:
        kit.relay(port=sink.port).deliver(MESSAGE, To=["one@example.org", "two@example.org"])
        kit.work()
        assert [m.rcpt_tos for m in sink.messages] == [["one@example.org"]]
        (left,) = kit.outbox.waiting()
        assert kit.outbox.get(left).envelope.rcpt_tos == ("two@example.org",)
        sink.rcpt_replies.clear()
        time.sleep(1.5)
        kit.work()
        assert [m.rcpt_tos for m in sink.messages] == [["one@example.org"], ["two@example.org"]]
