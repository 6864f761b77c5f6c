"""Mail loops and backscatter through the real processes (issue 11, items 2, 3, 7, 10).

Each test runs a receiver, a router worker and a relay as real ``lamson``
processes on the private Redis. In the loop tests the relay's smart host is
the application's own receiver, so every reply comes straight back in (the
attack run's setup: 1,733 messages in 30 s before loop protection).
"""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

import redis

from lamson import maildir
from tests.relay.test_relay_loops import utf8_sink
from tests.reliability.test_lifecycle_pipeline import App
from tests.sink import smtp_sink
from tests.support import free_port, make_project, wait_for, wait_port

#: A handler that answers everything, ignoring RFC 3834: only the framework can stop its loops.
NAIVE = '''\
from config import settings
from lamson.mail import MailResponse
from lamson.router import route, stateless


@route("(address)@(host)", address="[a-z0-9.-]+")
@stateless
def START(message, address=None, host=None):
    settings.relay.deliver(MailResponse(To=message.From, From=f"{address}@{host}",
                                        Subject="re: " + str(message["subject"]), Body="ok"))
'''


def start(tmp_path: Path, redis_url: str, *, relay_port: int | None = None, naive: bool = False,
          extra: str = "") -> App:
    root = tmp_path / "app"
    receiver_port = free_port()
    project = make_project(root, redis_url, receiver_port=receiver_port,
                           relay_port=relay_port or receiver_port,  # None: the relay sends to our own receiver
                           handlers=["app.handlers.naive" if naive else "app.handlers.sample"],
                           extra=f"namespace = 'app'\nloop_name = 'mx.test'\n{extra}")
    if naive:
        (root / "app" / "handlers" / "naive.py").write_text(NAIVE)
    app = App(root, project, redis_url)
    app.start("receiver")
    app.start("worker")
    app.start("relay")
    wait_port(receiver_port)
    return app


def send(app: App, sender: str, rcpts: list[str], subject: str = "hello", options: list[str] | None = None) -> None:
    data = f"From: {sender}\r\nTo: {rcpts[0]}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()
    with smtplib.SMTP("127.0.0.1", app.project["receiver_port"], timeout=30) as smtp:
        assert smtp.sendmail(sender, rcpts, data, mail_options=options or []) == {}


def log(app: App, name: str) -> str:
    path = app.root / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def routed(app: App) -> int:
    return log(app, "worker").count("routed to")


def settled(app: App, seconds: float = 3.0) -> int:
    """Wait until the number of routed messages stops changing for ``seconds``; return it."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = routed(app) + log(app, "worker").count("parked as")
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return routed(app)
        time.sleep(0.2)
    raise AssertionError(f"still routing after 60 s: {last}")


def test_the_demo_pointed_at_itself_answers_once_and_stops(tmp_path: Path, redis_url: str,
                                                           redis_conn: redis.Redis, apps: list[App]) -> None:
    app = start(tmp_path, redis_url)
    apps.append(app)
    # A forged sender at a served domain: the reply comes back to the demo itself.
    send(app, "victim@test.com", ["hello@test.com"])
    assert settled(app) == 2  # the message, and the reply to it; no reply to the reply
    assert "no reply to hello@test.com: automatic or bulk mail" in log(app, "worker")  # the reply, back in
    assert log(app, "relay").count("delivered") == 1


def test_a_handler_that_ignores_rfc_3834_is_stopped_by_the_trace(tmp_path: Path, redis_url: str,
                                                                 redis_conn: redis.Redis, apps: list[App]) -> None:
    app = start(tmp_path, redis_url, naive=True, extra="reply_rate_limit = 0\n")
    apps.append(app)
    send(app, "a@test.com", ["bot@test.com"])
    # The message (0 traces), its reply (1: allowed), the reply to that (2 > max_loop_traces=1): parked.
    assert settled(app) == 2
    assert "mail loop: it carries X-Lamson-Loop: app@mx.test 2 times (max_loop_traces=1)" in log(app, "worker")
    (parked,) = maildir.keys(app.root / "run" / "undeliverable")
    assert b"X-Lamson-Reason: mail loop" in (app.root / "run" / "undeliverable" / "new" / parked).read_bytes()


def test_the_reply_rate_limit_bounds_a_loop_nothing_else_stops(tmp_path: Path, redis_url: str,
                                                               redis_conn: redis.Redis, apps: list[App]) -> None:
    app = start(tmp_path, redis_url, naive=True, extra="max_loop_traces = 1000\nreply_rate_limit = 5\n")
    apps.append(app)
    # The limit counts per address and clock minute: a loop that crossed into the next minute would get
    # five more each (16 in a CI run). Start with at least 25 s of this minute left (the loop takes ~5 s).
    left = 60 - time.time() % 60
    if left < 25:
        time.sleep(left + 0.5)
    send(app, "a@test.com", ["bot@test.com"])
    total = settled(app)
    # Replies alternate between a@ and bot@: five each in the minute, the eleventh is parked.
    assert total == 11, total
    assert "reply rate limit: more than reply_rate_limit=5" in log(app, "relay")
    assert len(maildir.keys(app.root / "run" / "bounced")) == 1


def test_one_message_to_100_recipients_draws_one_reply(tmp_path: Path, redis_url: str,
                                                       redis_conn: redis.Redis, apps: list[App]) -> None:
    with smtp_sink() as sink:
        app = start(tmp_path, redis_url, relay_port=sink.port, extra="max_recipients = 100\n")
        apps.append(app)
        send(app, "someone@client.test", [f"user{i}@test.com" for i in range(100)])
        wait_for(lambda: "routed to 100 recipient(s)" in log(app, "worker"), 60, 0.2, "the message routed")
        wait_for(lambda: sink.messages, 30, 0.1, "the reply")
        time.sleep(2)
        assert [m.rcpt_tos for m in sink.messages] == [["someone@client.test"]]
        assert log(app, "worker").count("the message was already answered") == 99


def test_quoted_and_non_ascii_senders_get_replies_addressed_as_they_wrote(tmp_path: Path, redis_url: str,
                                                                          redis_conn: redis.Redis,
                                                                          apps: list[App]) -> None:
    senders = ['"a b"@client.test', '"(c)x"@client.test', '"a\\"b"@client.test', "josé@client.test"]
    with utf8_sink(True) as sink:
        app = start(tmp_path, redis_url, relay_port=sink.port)
        apps.append(app)
        for i, sender in enumerate(senders):
            send(app, sender, [f"bot{i}@test.com"], options=[] if sender.isascii() else ["SMTPUTF8"])
        wait_for(lambda: len(sink.messages) >= len(senders), 60, 0.1, "every reply")
        time.sleep(1)
    got = {m.rcpt_tos[0]: m.data for m in sink.messages}
    assert sorted(got) == sorted(senders)
    for sender, data in got.items():
        (to,) = [line for line in data.split(b"\r\n") if line.startswith(b"To:")]
        assert to == b"To: " + sender.encode(), to
        assert b"Auto-Submitted: auto-replied" in data and b"X-Lamson-Loop: app@mx.test" in data
