"""lamson.loops: the trace header, inherited hop counts, once-per-message answers, the reply rate."""

from __future__ import annotations

from types import SimpleNamespace

import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from lamson import loops
from lamson.envelope import Envelope
from lamson.mail import MailRequest
from lamson.names import Names

MESSAGE = b"From: a@client.test\r\nTo: b@test.com\r\nSubject: hi\r\n\r\nbody\r\nX-Lamson-Loop: app@host\r\n"


def test_trace_name_is_namespace_at_installation(monkeypatch) -> None:
    monkeypatch.delenv("LAMSON_HOSTNAME", raising=False)
    assert loops.trace_name(SimpleNamespace(namespace="app", loop_name="Mail.Example.org")) == "app@mail.example.org"
    monkeypatch.setenv("LAMSON_HOSTNAME", "hosta")
    assert loops.trace_name(SimpleNamespace(namespace="app", loop_name=None)) == "app@hosta"
    # Whatever the setting holds, the header value stays one ASCII token.
    assert loops.trace_name(SimpleNamespace(namespace="app", loop_name="a b\r\nX: y")) == "app@abxy"


def test_count_traces_reads_the_header_block_only_and_only_ours() -> None:
    assert loops.count_traces(MESSAGE, "app@host") == 0  # the one in the body does not count
    data = b"X-Lamson-Loop: app@host\r\nx-lamson-loop:APP@HOST \r\nX-Lamson-Loop: other@host\r\n" + MESSAGE
    assert loops.count_traces(data, "app@host") == 2
    assert loops.count_traces(data, "other@host") == 1


def test_add_traces_adds_one_pass_and_inherits_the_answered_messages_count() -> None:
    once = loops.add_traces(MESSAGE, "app@host")
    assert once.startswith(b"X-Lamson-Loop: app@host\r\nFrom:") and loops.count_traces(once, "app@host") == 1
    # A forwarded message keeps its traces and gains one.
    assert loops.count_traces(loops.add_traces(once, "app@host"), "app@host") == 2
    # A reply to a message that carried 3: a new message, carrying 4.
    assert loops.count_traces(loops.add_traces(MESSAGE, "app@host", inherited=3), "app@host") == 4
    # Forwarded and inherited are the same passes: never counted twice.
    assert loops.count_traces(loops.add_traces(once, "app@host", inherited=1), "app@host") == 2


def test_handling_sets_the_inherited_count_for_the_handler_only() -> None:
    assert loops.inherited() is None
    with loops.handling(2):
        assert loops.inherited() == 2
    assert loops.inherited() is None


def _received(env: Envelope, rcpt: str) -> MailRequest:
    message = MailRequest(env.peer, env.mail_from, rcpt, MESSAGE)
    message.envelope = env
    return message


def test_first_for_answers_one_message_once_however_many_recipients(redis_conn: redis.Redis) -> None:
    names = Names("t")
    env = Envelope(mail_from="a@client.test", rcpt_tos=tuple(f"u{i}@test.com" for i in range(100)))
    answers = [loops.first_for(_received(env, r), conn=redis_conn, names=names) for r in env.rcpt_tos]
    assert answers == [True] + [False] * 99
    # Another message, and another scope (a second list on the same message), answer once each.
    other = Envelope(mail_from="a@client.test", rcpt_tos=("x@test.com",))
    assert loops.first_for(_received(other, "x@test.com"), conn=redis_conn, names=names)
    assert loops.first_for(_received(env, "u1@test.com"), "list-b", conn=redis_conn, names=names)
    assert not loops.first_for(_received(env, "u2@test.com"), "list-b", conn=redis_conn, names=names)
    key = f"t:answered:{env.id}".encode()
    assert redis_conn.ttl(key) > 24 * 3600


def test_first_for_answers_again_when_an_earlier_attempt_died(redis_conn: redis.Redis) -> None:
    from dataclasses import replace

    names = Names("t")
    env = Envelope(mail_from="a@client.test", rcpt_tos=("x@test.com", "y@test.com"))
    assert loops.first_for(_received(env, "x@test.com"), conn=redis_conn, names=names)
    retried = replace(env, attempts=1)  # its worker died: the reply may never have been committed
    assert loops.first_for(_received(retried, "x@test.com"), conn=redis_conn, names=names)
    assert not loops.first_for(_received(retried, "y@test.com"), conn=redis_conn, names=names)


def test_first_for_without_an_envelope_is_always_first() -> None:
    message = MailRequest("peer", "a@client.test", "b@test.com", MESSAGE)
    assert loops.first_for(message) and loops.first_for(message)


def test_over_rate_counts_per_address_per_minute(redis_conn: redis.Redis) -> None:
    names = Names("t")
    counts = [loops.over_rate(redis_conn, names, "A@client.test", 3, now=600.0) for _ in range(5)]
    assert counts == [None, None, None, 4, 5]
    assert loops.over_rate(redis_conn, names, "b@client.test", 3, now=600.0) is None  # another address
    assert loops.over_rate(redis_conn, names, "a@client.test", 3, now=660.0) is None  # the next minute
    assert loops.over_rate(redis_conn, names, "a@client.test", 0, now=600.0) is None  # 0: no limit
    assert 0 < redis_conn.ttl(b"t:replies:a@client.test:10") <= 120


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=40).map(lambda b: bytes(b"ab\r\n:"[x % 5] for x in b)),
       limit=st.integers(min_value=0, max_value=40))
def test_header_block_end_is_the_first_blank_line_of_any_kind(data: bytes, limit: int) -> None:
    """It looks for CRLF CRLF first and for LF LF / CR CR only before it: still the earliest of the three."""
    from lamson.encoding import header_block_end

    if data.startswith((b"\n", b"\r")):
        expected: int | None = 0
    else:
        found = [i for i in (data.find(sep, 0, limit + 4) for sep in (b"\n\n", b"\r\n\r\n", b"\r\r")) if i >= 0]
        expected = min(found) if found else None
    assert header_block_end(data, limit) == expected
