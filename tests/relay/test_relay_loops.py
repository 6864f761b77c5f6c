"""The relay's part in loop protection: the trace header, the reply rate limit, SMTPUTF8 (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lamson import loops
from lamson.mail import MailResponse
from tests.relaykit import RelayKit
from tests.sink import CountingController, Sink, smtp_sink
from tests.support import free_port

MESSAGE = (b"From: app@test.com\r\nTo: someone@example.org\r\nBcc: hidden@example.org\r\nSubject: hi\r\n"
           b"\r\nbody\r\n")


def test_every_message_sent_carries_our_trace_once(kit: RelayKit) -> None:
    name = loops.trace_name(kit.settings, kit.ctx.names)
    with smtp_sink() as sink:
        kit.relay(port=sink.port).deliver(MESSAGE)
        kit.work()
        (sent,) = sink.messages
    assert sent.data.startswith(f"X-Lamson-Loop: {name}\r\n".encode())
    assert loops.count_traces(sent.data, name) == 1
    assert b"hidden@example.org" not in sent.data  # added over the bytes sent: Bcc already gone


def test_a_reply_inherits_the_trace_count_of_the_message_it_answers(kit: RelayKit) -> None:
    name = loops.trace_name(kit.settings, kit.ctx.names)
    with smtp_sink() as sink:
        with loops.handling(2):  # as the router does for a message carrying our trace twice
            key = kit.relay(port=sink.port).deliver(MESSAGE)
        assert kit.outbox.get(key).envelope.extra[loops.AUTO] == "1"
        kit.work()
        (sent,) = sink.messages
    assert loops.count_traces(sent.data, name) == 3


def test_automatic_mail_over_the_rate_limit_is_parked_with_the_reason(kit: RelayKit) -> None:
    kit.settings.reply_rate_limit = 3
    with smtp_sink() as sink:
        relay = kit.relay(port=sink.port)
        for _ in range(5):
            with loops.handling(0):
                relay.deliver(MESSAGE)
        for _ in range(2):  # not automatic (a script): never limited
            relay.deliver(MESSAGE)
        kit.work()
        assert len(sink.messages) == 3 + 2
    parked = kit.bounced()
    assert len(parked) == 2
    assert all(b"X-Lamson-Reason: reply rate limit: more than reply_rate_limit=3" in p for p in parked)
    assert kit.outbox.waiting() == [] and kit.outbox.claims() == []


def test_only_the_recipients_over_the_limit_are_held_back(kit: RelayKit) -> None:
    kit.settings.reply_rate_limit = 1
    with smtp_sink() as sink:
        relay = kit.relay(port=sink.port)
        with loops.handling(0):
            relay.deliver(MESSAGE, To=["busy@example.org"])
            relay.deliver(MESSAGE, To=["busy@example.org", "fresh@example.org"])
        kit.work()
        assert sorted(r for m in sink.messages for r in m.rcpt_tos) == ["busy@example.org", "fresh@example.org"]
    (parked,) = kit.bounced()
    assert b'"rcpt_tos":["busy@example.org"]' in parked.replace(b", ", b",").replace(b": ", b":")


def test_a_backlog_released_at_once_counts_by_when_its_mail_was_accepted(kit: RelayKit) -> None:
    """Replies made in one burst (the backlog of a Redis outage) to mail accepted over three
    minutes, two a minute: under a limit of 3 a minute none is held back. Replies to mail
    accepted within one minute (a loop's turns) are held back however late they are made."""
    import time

    from lamson import context

    kit.settings.reply_rate_limit = 3
    start = (int(time.time() // 60) - 10) * 60 + 1.0  # the first second of a minute ten minutes ago
    with smtp_sink() as sink:
        relay = kit.relay(port=sink.port)
        for minute in range(3):
            for second in (0, 30):
                accepted = context.Handling(traces=0, accepted_at=start + 60 * minute + second)
                with context.handling(accepted):
                    relay.deliver(MESSAGE, To=["patient@example.org"])
        for second in range(5):
            with context.handling(context.Handling(traces=0, accepted_at=start + 300 + second)):
                relay.deliver(MESSAGE, To=["looping@example.org"])
        kit.work()
        sent = sorted(r for m in sink.messages for r in m.rcpt_tos)
    assert sent == ["looping@example.org"] * 3 + ["patient@example.org"] * 6
    parked = kit.bounced()
    assert len(parked) == 2 and all(b"looping@example.org" in p and b"reply_rate_limit=3" in p for p in parked)


@contextmanager
def utf8_sink(enabled: bool) -> Iterator[Sink]:
    sink = Sink()
    sink.port = free_port()
    controller = CountingController(sink, hostname="127.0.0.1", port=sink.port, enable_SMTPUTF8=enabled)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def test_a_non_ascii_address_goes_out_with_smtputf8(kit: RelayKit) -> None:
    reply = MailResponse(To="josé@client.test", From="bot@test.com", Subject="Re", Body="ok")
    with utf8_sink(True) as sink:
        kit.relay(port=sink.port).deliver(reply)
        kit.work()
        (sent,) = sink.messages
    assert sent.rcpt_tos == ["josé@client.test"]
    assert "To: josé@client.test".encode() in sent.data and b"=?" not in sent.data


def test_without_smtputf8_a_non_ascii_address_is_refused_not_rewritten(kit: RelayKit) -> None:
    reply = MailResponse(To="josé@client.test", From="bot@test.com", Subject="Re", Body="ok")
    with utf8_sink(False) as sink:
        kit.relay(port=sink.port).deliver(reply)
        kit.work_until(lambda: kit.bounced())
        # The one message that went out is the notification to the (ASCII) sender.
        assert [m.rcpt_tos for m in sink.messages] == [["bot@test.com"]]
    (parked,) = kit.bounced()
    assert b"553 5.6.7" in parked
