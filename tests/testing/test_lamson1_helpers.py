"""lamson.testing as Lamson 1.x tests use it, next to this project's in-process forms.

The test queue is ``run/queue`` (its Maildir) plus what CapturingRelays
captured in this process; every test runs in a scratch directory so the
repository's own run/queue is never touched.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import lamson.testing
from lamson import maildir
from lamson.mail import MailRequest, MailResponse
from lamson.queue import Queue
from lamson.receiver.logserver import envelope_headers
from lamson.router import RouterClass
from lamson.testing import (
    TEST_QUEUE,
    CapturingRelay,
    RouterConversation,
    TestConversation,
    clear_queue,
    delivered,
    make_message,
    queue,
)
from lamson.testing.relay import SENT, SMTPRelay
from lamson.testing.relay import relay as make_relay
from tests.cli.conftest import base_env, kill_pid
from tests.sink import smtp_sink
from tests.support import BIN, free_port, spawn, stop_process, wait_for, wait_port

REPLIER = "tests.router.handlers.replier"


@pytest.fixture
def app(router: RouterClass, project_dir: Path) -> RouterClass:
    router.defaults(host="test\\.com")
    router.load([REPLIER])
    return router


def logged(folder: Path, sender: str, rcpt: str, data: bytes) -> str:
    """Store a message as the logging server does (envelope headers first)."""
    return maildir.write(maildir.ensure(folder), envelope_headers(sender, [rcpt]) + data)


def test_guide_test_module_runs_as_written(app: RouterClass) -> None:
    """The shape of a 1.x generated test: star import, relay(port=...), say with a positional expect."""
    namespace: dict[str, object] = {}
    exec("from lamson.testing import *", namespace)  # noqa: S102 - exactly what a 1.x test module does
    assert {"relay", "queue", "clear_queue", "delivered", "TestConversation", "RouterConversation",
            "assert_in_state", "spelling", "TEST_QUEUE"} <= set(namespace)
    relay = namespace["relay"](port=8823)  # type: ignore[operator]
    assert isinstance(relay, SMTPRelay) and relay.port == 8823  # nothing connected yet

    client = RouterConversation("somedude@localhost", "requests_tests")
    client.begin()
    reply = client.say("echo@test.com", "Test that forward works.", "somedude@localhost")
    assert reply["subject"] == "Re: requests_tests"
    client.say("tester@badplace.notinterwebs", "Relay should not happen")
    assert queue().count() == 1
    assert TEST_QUEUE == "run/queue"


def test_delivered_searches_whole_messages_first_match_or_false(app: RouterClass) -> None:
    client = RouterConversation("Tester <tester@example.org>", "Hello")
    client.begin()
    client.say("echo@test.com", "ping")
    client.say("echo@test.com", "pong")
    first = delivered("tester@example.org")
    assert first["subject"] == "Re: Hello"  # the first match in queue order, not the latest
    assert delivered(r"welcome\s+back")["subject"] == "again"  # a regex over the body
    assert delivered("^Subject: again$".replace("^", "(?m)^"))["subject"] == "again"  # over the raw headers
    assert delivered("X-Original-To: tester@example.org")  # the envelope, as lamson log records it
    assert delivered("nobody-said-this") is False
    assert delivered("tester@", body="you said: ping")["subject"] == "Re: Hello"  # today's keyword still works


def test_delivered_finds_encoded_text(project_dir: Path) -> None:
    relay = CapturingRelay()
    relay.deliver(MailResponse(To="a@example.org", From="b@test.com", Subject="Grüße", Body="Schöne Grüße aus Köln"))
    assert delivered("Schöne Grüße")
    assert delivered("Subject: Grüße")
    assert delivered("aus Paris") is False


def test_say_expect_looks_only_at_what_arrived_after(app: RouterClass) -> None:
    client = RouterConversation("tester@example.org", "Hi")
    client.timeout = 0.2
    client.begin()
    client.say("echo@test.com", "one", expect="tester@")
    second = client.say("echo@test.com", "two", expect="tester@")
    assert second["subject"] == "again"
    app.clear_routes()  # nobody answers any more: an earlier reply must not count as the answer
    with pytest.raises(AssertionError, match="expected a message matching 'tester@'"):
        client.say("echo@test.com", "three", expect="tester@")


def test_conversation_deliver_takes_the_guides_arguments_or_a_message(app: RouterClass) -> None:
    client = RouterConversation("tester@example.org", "Hi")
    client.begin()
    assert client.deliver("echo@test.com", "other@example.org", "Own subject", "body") == 1
    assert delivered("To: other@example.org")["subject"] == "Re: Own subject"
    assert client.deliver(make_message("third@example.org", "echo@test.com", "Prepared", "x")) == 1
    assert delivered("third@example.org")["subject"] == "Re: Prepared"


def test_queue_is_the_maildir_plus_what_was_captured(project_dir: Path) -> None:
    disk = logged(project_dir / "run" / "queue", "server@test.com", "me@example.org",
                  b"From: server@test.com\r\nTo: me@example.org\r\nSubject: from lamson log\r\n\r\nlogged\r\n")
    relay = CapturingRelay()
    key = relay.deliver(MailResponse(To="me@example.org", From="app@test.com", Subject="captured", Body="kept"))

    inq = queue("run/queue")
    assert inq.keys() == [disk, key]
    assert [m["subject"] for m in inq] == ["from lamson log", "captured"]  # today's list form
    assert len(inq) == 2 and inq[1]["subject"] == "captured"
    assert queue("./run/queue/").count() == 2 and queue(project_dir / "run" / "queue").count() == 2
    assert inq.get(disk)["subject"] == "from lamson log"
    assert delivered("from lamson log")["subject"] == "from lamson log"
    assert inq.pop()[0] == disk and inq.keys() == [key]
    assert inq.remove(key) and inq.count() == 0

    relay.deliver(MailResponse(To="me@example.org", From="app@test.com", Subject="again", Body="x"))
    logged(project_dir / "run" / "queue", "s@test.com", "me@example.org", b"Subject: on disk\r\n\r\nx\r\n")
    assert clear_queue() == 2
    assert queue().count() == 0 and maildir.keys(project_dir / "run" / "queue", "new") == []


def test_other_queues_and_to_queue(project_dir: Path) -> None:
    CapturingRelay().deliver(MailResponse(To="me@example.org", From="app@test.com", Subject="reply", Body="x"))
    posts = Queue(project_dir / "run" / "posts")
    posts.push(b"From: me@example.org\r\nTo: blog@test.com\r\nSubject: my post\r\n\r\nHello world\r\n")
    assert queue("run/posts").count() == 1  # captured replies belong to run/queue only
    assert delivered("Hello world", to_queue=queue("run/posts"))["subject"] == "my post"
    assert delivered("Hello world", to_queue=posts)["subject"] == "my post"  # a lamson.queue.Queue
    assert delivered("Hello world", to_queue="run/posts")
    assert delivered("Hello world") is False
    own = CapturingRelay(queue_dir="run/replies")
    own.deliver(MailResponse(To="x@example.org", From="app@test.com", Subject="elsewhere", Body="x"))
    assert delivered("elsewhere") is False and delivered("elsewhere", to_queue=queue("run/replies"))


def test_a_missing_test_queue_reads_empty_and_is_not_created(project_dir: Path) -> None:
    assert queue().count() == 0 and list(queue()) == [] and queue().pop() == (None, None)
    assert clear_queue() == 0 and delivered("x") is False
    assert not (project_dir / "run").exists()
    key = queue().push(b"Subject: pushed\r\n\r\nx\r\n")
    assert (project_dir / "run" / "queue" / "new" / key).is_file()


def test_capturing_relay_sends_what_the_real_relay_would(project_dir: Path) -> None:
    relay = CapturingRelay("smtp.example.org", 25, "user", "secret", ssl=False, starttls=True, lmtp=False,
                           debug=1, redis_url="redis://unused")  # the real Relay's arguments
    message = MailResponse(To="a@example.org", From="app@test.com", Subject="s", Body="b")
    message["Cc"] = "c@example.org"
    message["Bcc"] = "hidden@example.org"
    relay.deliver(message)
    copies = {m.To: m for m in queue()}
    assert set(copies) == {"a@example.org", "c@example.org", "hidden@example.org"}
    for rcpt, copy in copies.items():
        assert copy["bcc"] is None  # removed, as the real relay removes it
        assert copy["x-original-to"] == rcpt and copy["return-path"] == "<app@test.com>"
    with pytest.raises(ValueError):
        relay.deliver(MailResponse(To="a@example.org\r\nRCPT TO:<x@evil.org>", From="app@test.com", Body="x"))
    with pytest.raises(ValueError, match="no recipients"):
        relay.deliver(MailResponse(From="app@test.com", Body="x"))


def test_forwarding_a_received_message_reaches_only_its_envelope_recipient(project_dir: Path) -> None:
    received = MailRequest("127.0.0.1", "sender@example.org", "list@test.com",
                           b"From: sender@example.org\r\nTo: list@test.com\r\nCc: third@example.org\r\n"
                           b"Subject: fwd\r\n\r\nbody\r\n")
    relay = CapturingRelay()
    relay.deliver(received)
    assert [m.To for m in queue()] == ["list@test.com"]
    relay.deliver(received, To="member@example.org")
    assert [m.To for m in queue()] == ["list@test.com", "member@example.org"]


def test_router_reset_forgets_captures_but_never_the_maildir(project_dir: Path) -> None:
    from lamson.testing import reset_router

    logged(project_dir / "run" / "queue", "s@test.com", "me@example.org", b"Subject: keep\r\n\r\nx\r\n")
    CapturingRelay().deliver(MailResponse(To="me@example.org", From="app@test.com", Subject="forget", Body="x"))
    assert len(SENT.entries) == 1
    reset_router()
    assert [m["subject"] for m in queue()] == ["keep"]


# ----------------------------------------------------------------------------- over real SMTP


def test_relay_sends_over_smtp_now() -> None:
    with smtp_sink() as sink:
        relay = make_relay("127.0.0.1", sink.port)
        message = MailResponse(To="a@example.org", From="app@test.com", Subject="now", Body="line one\nline two")
        message["Bcc"] = "hidden@example.org"
        assert relay.deliver(message) == {}
        got = sink.messages[0]
        assert got.mail_from == "app@test.com" and sorted(got.rcpt_tos) == ["a@example.org", "hidden@example.org"]
        assert b"Bcc" not in got.data and b"line one\r\nline two" in got.data
        relay.send("b@example.org", "app@test.com", "sent", "body")
        assert sink.messages[1].rcpt_tos == ["b@example.org"]


def test_relay_raises_when_it_cannot_send() -> None:
    relay = lamson.testing.relay(port=free_port())  # type: ignore[operator]  # the 1.x call form
    with pytest.raises(ConnectionRefusedError):
        relay.send("a@example.org", "app@test.com", "s", "b")
    with smtp_sink(rcpt_replies={"bad@example.org": "550 no such user"}) as sink:
        import smtplib

        with pytest.raises(smtplib.SMTPRecipientsRefused):
            make_relay(port=sink.port).send("bad@example.org", "app@test.com", "s", "b")
        assert make_relay(port=sink.port).deliver(
            MailResponse(To=["bad@example.org", "ok@example.org"], From="app@test.com", Body="x")
        ) == {"bad@example.org": (550, b"no such user")}


def test_relay_speaks_lmtp() -> None:
    import smtplib

    from aiosmtpd.controller import Controller
    from aiosmtpd.lmtp import LMTP

    from tests.sink import Sink

    class LMTPController(Controller):
        def factory(self):  # type: ignore[no-untyped-def]
            return LMTP(self.handler)

    sink = Sink()
    port = free_port()
    controller = LMTPController(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        make_relay(port=port, lmtp=True).send("a@example.org", "app@test.com", "lmtp", "b")
        assert sink.messages[-1].rcpt_tos == ["a@example.org"]
        with pytest.raises(smtplib.SMTPException):  # the same server does not speak SMTP
            make_relay(port=port).send("a@example.org", "app@test.com", "smtp to lmtp", "b")
    finally:
        controller.stop()


@pytest.fixture
def log_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A real `lamson log` (foreground) on a free port, storing into tmp_path/run/queue; ended by pid."""
    monkeypatch.chdir(tmp_path)
    port = free_port()
    proc: subprocess.Popen[bytes] = spawn([str(BIN / "lamson"), "log", "-foreground", "-port", str(port)],
                                          cwd=tmp_path, env=base_env(tmp_path), log=tmp_path / "log.out")
    try:
        wait_port(port, timeout=20)
        yield port
    finally:
        stop_process(proc)
        kill_pid(proc.pid)


def test_test_conversation_against_a_running_server(log_server: int, tmp_path: Path) -> None:
    """1.x's TestConversation: over SMTP to a running server, replies found in run/queue (polled)."""
    client = TestConversation(lamson.testing.relay(port=log_server), "tester@example.org", "Over SMTP")  # type: ignore[operator]
    client.timeout = 20
    client.begin()
    stored = client.say("hello@test.com", "Hi over the wire.", expect="X-Original-To: hello@test.com")
    assert stored["subject"] == "Over SMTP" and "Hi over the wire." in stored.body()
    assert wait_for(lambda: queue().count() == 1, 5, what="one message in run/queue")
    assert (tmp_path / "run" / "queue" / "new").is_dir()
    client.timeout = 0.5
    with pytest.raises(AssertionError, match="expected a message matching 'X-Original-To: nobody@'"):
        client.say("hello@test.com", "again", expect="X-Original-To: nobody@")
    client.begin()
    assert queue().count() == 0
    assert TestConversation.__test__ is False  # pytest must not collect the 1.x class from `import *`


# ----------------------------------------------------------------------------- spelling


def test_spelling_as_lamson_1_calls_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert lamson.testing.spelling("welcome.txt", "Thank you for your message.") is True  # type: ignore[operator]
    assert lamson.testing.spelling("bad.txt", "We recieved your mesage.", "en_US") is False  # type: ignore[operator]
    out = capsys.readouterr().out
    assert "bad.txt: 'recieved'" in out and "bad.txt: 'mesage'" in out and "2 spelling error(s)" in out
    # The module's own functions are unchanged.
    from lamson.testing.spelling import assert_spelling, spelling

    assert spelling("We recieved it") == ["recieved"]
    with pytest.raises(AssertionError):
        assert_spelling("We recieved it")
