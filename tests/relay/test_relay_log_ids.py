"""The relay's log lines name the incoming message a reply answers (issue 19, item 7): its id rides in
the reply's outbox record (``extra["origin"]``) and in the delivery status notification of a bounce."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from lamson import context, logs
from lamson.envelope import ORIGIN
from tests.relay.test_relay import MESSAGE
from tests.relaykit import RelayKit
from tests.sink import smtp_sink

ID = "0123456789ABCDEF"


@pytest.fixture
def relay_lines() -> Iterator[io.StringIO]:
    """What lamson.relay logs at INFO and above, in the text format, one event per line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.SafeFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("lamson.relay")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_reply_and_the_notification_of_its_bounce_are_logged_under_the_incoming_id(
        kit: RelayKit, relay_lines: io.StringIO) -> None:
    with smtp_sink(replies=["554 5.7.1 no thanks"]) as sink:
        with context.handling(context.Handling(id=ID)):  # as the router runs a handler
            key = kit.relay(port=sink.port).deliver(MESSAGE)
        assert kit.outbox.get(key).envelope.extra[ORIGIN] == ID
        kit.work_until(lambda: len(sink.messages) >= 1)
        assert [m.mail_from for m in sink.messages] == ["<>"]  # the notification reached the sender
    lines = relay_lines.getvalue().splitlines()
    assert any(line.startswith(f"ERROR {ID}: 5xx from 127.0.0.1:") for line in lines), lines
    assert any(line.startswith(f"WARNING {ID}: {key} parked as ") for line in lines), lines
    assert any(line.startswith(f"INFO {ID}: delivered ") and "from=<>" in line for line in lines), lines
    assert all(ID in line for line in lines), lines


def test_mail_written_outside_a_handler_names_no_message(kit: RelayKit, relay_lines: io.StringIO) -> None:
    with smtp_sink() as sink:
        key = kit.relay(port=sink.port).deliver(MESSAGE)  # a script's mail: no incoming message
        assert ORIGIN not in kit.outbox.get(key).envelope.extra
        kit.work_until(lambda: sink.messages)
    (line,) = [line for line in relay_lines.getvalue().splitlines() if "delivered" in line]
    assert line.startswith(f"INFO delivered {key} ")
