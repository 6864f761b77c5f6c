"""The relay to a smart host with TLS, AUTH and LMTP, against real aiosmtpd servers and certificates made here."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import trustme
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import AuthResult, LoginPassword

from lamson.relay.smtp import Connections, Security, SessionError
from tests.relaykit import RelayKit
from tests.sink import CountingController, Sink
from tests.support import free_port

MESSAGE = b"From: app@test.com\r\nTo: one@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
PASSWORD = "s3cret-Pa55word"  # noqa: S105
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"app" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


class LMTPController(CountingController):
    def factory(self):  # type: ignore[no-untyped-def]
        self.sink.connections += 1
        return LMTP(self.handler, **self.SMTP_kwargs)


class LMTPSink(Sink):
    """One reply per recipient after DATA (RFC 2033); rcpt_replies' "data:" entries refuse one there."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await super().handle_DATA(server, session, envelope)
        return "\r\n".join(self.rcpt_replies.get(f"data:{r}", "250 2.0.0 OK") for r in envelope.rcpt_tos)


@contextmanager
def server(ca: trustme.CA, kind: str) -> Iterator[Sink]:
    """A smart host: "starttls" (STARTTLS + AUTH required), "implicit" (TLS from the start, AUTH) or "lmtp"."""
    sink: Sink = LMTPSink() if kind == "lmtp" else Sink()
    sink.port = free_port()
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": sink.port, "server_hostname": "localhost"}
    if kind == "starttls":
        kwargs.update(tls_context=server_context(ca), require_starttls=True, auth_required=True,
                      authenticator=authenticator)
    elif kind == "implicit":
        kwargs.update(ssl_context=server_context(ca), auth_required=True, authenticator=authenticator,
                      auth_require_tls=False)  # the whole session is TLS already
    controller = (LMTPController if kind == "lmtp" else CountingController)(sink, **kwargs)
    controller.start()
    sink.connections = 0
    try:
        yield sink
    finally:
        controller.stop()


def make_kit(tmp_path: Path, conn: redis.Redis, port: int, **config: Any) -> RelayKit:
    return RelayKit(tmp_path, conn, relay_config={"host": "127.0.0.1", "port": port, **config})


def test_starttls_and_auth_deliver_and_the_session_is_kept(tmp_path: Path, redis_conn: redis.Redis, ca: trustme.CA,
                                                          ca_file: str, caplog: pytest.LogCaptureFixture) -> None:
    with server(ca, "starttls") as sink:
        kit = make_kit(tmp_path, redis_conn, sink.port, starttls="required", username="app", password=PASSWORD,
                       ca_file=ca_file)
        try:
            with caplog.at_level(logging.DEBUG):
                kit.relay(port=sink.port).deliver(MESSAGE)
                kit.work_until(lambda: len(sink.messages) == 1)
                kit.relay(port=sink.port).deliver(MESSAGE)
                kit.work_until(lambda: len(sink.messages) == 2)
        finally:
            kit.close()
    assert sink.connections == 1  # TLS and AUTH once, the session reused
    assert kit.outbox.waiting() == []
    assert PASSWORD not in caplog.text


def test_password_from_a_file_or_the_environment(tmp_path: Path, redis_conn: redis.Redis, ca: trustme.CA,
                                                 ca_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "relay.pass"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("RELAY_PASS", PASSWORD)
    for source in ({"password_file": str(secret)}, {"password_env": "RELAY_PASS"}):
        with server(ca, "starttls") as sink:
            kit = make_kit(tmp_path / str(len(source)) / next(iter(source)), redis_conn, sink.port,
                           starttls="required", username="app", ca_file=ca_file, **source)
            try:
                kit.relay(port=sink.port).deliver(MESSAGE)
                kit.work_until(lambda: len(sink.messages) == 1)
            finally:
                kit.close()


def test_wrong_password_is_a_clear_log_line_and_the_message_waits(tmp_path: Path, redis_conn: redis.Redis,
                                                                   ca: trustme.CA, ca_file: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    with server(ca, "starttls") as sink:
        kit = make_kit(tmp_path, redis_conn, sink.port, starttls="required", username="app",
                       password="wrong-" + PASSWORD, ca_file=ca_file, relay_retries=[3600])
        try:
            with caplog.at_level(logging.INFO):
                key = kit.relay(port=sink.port).deliver(MESSAGE)
                kit.work()
        finally:
            kit.close()
    assert sink.messages == []
    assert kit.outbox.waiting() == [key]  # kept, retried with backoff: nothing lost
    assert kit.bounced() == []
    assert "authentication refused with 127.0.0.1:" in caplog.text and "535" in caplog.text
    assert PASSWORD not in caplog.text
    record = kit.outbox.get(key)
    assert PASSWORD.encode() not in repr(record.envelope).encode() and PASSWORD.encode() not in record.data


def test_untrusted_certificate_is_not_sent_to(tmp_path: Path, redis_conn: redis.Redis, ca: trustme.CA,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with server(ca, "starttls") as sink:
        kit = make_kit(tmp_path, redis_conn, sink.port, starttls="required", username="app", password=PASSWORD,
                       relay_retries=[3600])  # no ca_file: the test CA is not trusted
        try:
            with caplog.at_level(logging.INFO):
                key = kit.relay(port=sink.port).deliver(MESSAGE)
                kit.work()
        finally:
            kit.close()
    assert sink.messages == []
    assert kit.outbox.waiting() == [key]
    assert "certificate with 127.0.0.1:" in caplog.text and "not trusted" in caplog.text
    assert PASSWORD not in caplog.text


def test_starttls_required_but_not_offered_is_not_sent_in_the_clear(tmp_path: Path, redis_conn: redis.Redis,
                                                                     ca: trustme.CA,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    with server(ca, "lmtp") as plain:  # no TLS at all
        connections = Connections(timeout=2)
        with pytest.raises(SessionError, match="STARTTLS not offered"):
            connections.send("127.0.0.1", plain.port, "a@test.com", ["b@example.org"], MESSAGE,
                             Security(starttls="required", lmtp=True))
    assert plain.messages == []


def test_implicit_tls(tmp_path: Path, redis_conn: redis.Redis, ca: trustme.CA, ca_file: str) -> None:
    with server(ca, "implicit") as sink:
        kit = make_kit(tmp_path, redis_conn, sink.port, ssl=True, username="app", password=PASSWORD,
                       ca_file=ca_file)
        try:
            kit.relay(port=sink.port).deliver(MESSAGE)
            kit.work_until(lambda: len(sink.messages) == 1)
        finally:
            kit.close()
    assert sink.messages[0].rcpt_tos == ["one@example.org"]


def test_guide_style_relay_records_only_the_flags(tmp_path: Path, redis_conn: redis.Redis, ca: trustme.CA,
                                                  ca_file: str) -> None:
    from lamson.relay import Relay

    with server(ca, "implicit") as sink:
        # relay_config holds the credentials and the CA; the boot file's Relay says "ssl".
        kit = make_kit(tmp_path, redis_conn, sink.port, username="app", password=PASSWORD, ca_file=ca_file)
        try:
            relay = Relay("127.0.0.1", sink.port, "app", PASSWORD, ssl=True, connection=kit.conn,
                          outbox=kit.outbox, settings=kit.settings)
            key = relay.deliver(MESSAGE)
            extra = kit.outbox.get(key).envelope.extra
            assert extra["relay_ssl"] == "True" and "relay_starttls" not in extra
            assert PASSWORD not in repr(extra) and "app" not in extra.values()
            kit.work_until(lambda: len(sink.messages) == 1)
        finally:
            kit.close()


def test_lmtp_one_reply_per_recipient(tmp_path: Path, redis_conn: redis.Redis, ca: trustme.CA) -> None:
    with server(ca, "lmtp") as sink:
        sink.rcpt_replies["data:two@example.org"] = "550 5.1.1 no such mailbox"
        kit = make_kit(tmp_path, redis_conn, sink.port, lmtp=True)
        try:
            kit.relay(port=sink.port).deliver(MESSAGE, To=["one@example.org", "two@example.org"])
            kit.work_until(lambda: len(kit.bounced()) == 1)
            kit.relay(port=sink.port).deliver(MESSAGE)  # the session is still in step: reused
            kit.work_until(lambda: len(sink.messages) >= 2 and not kit.outbox.waiting())
        finally:
            kit.close()
    assert sink.connections == 1
    assert b"two@example.org" in kit.bounced()[0] and b"no such mailbox" in kit.bounced()[0]


def test_settings_that_cannot_work_are_a_clear_error_not_a_crash(tmp_path: Path, redis_conn: redis.Redis,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    from lamson.relay.smtp import smarthost_security

    with pytest.raises(SessionError, match="configuration"):
        Connections(timeout=1).send("127.0.0.1", free_port(), "a@test.com", ["b@example.org"], MESSAGE,
                                    Security(ssl=True, lmtp=True))
    with pytest.raises(SessionError, match="starttls must be"):
        smarthost_security({"host": "h", "port": 25, "starttls": "always"}, {}, "h", 25)
    kit = make_kit(tmp_path, redis_conn, 25, starttls="always", relay_retries=[3600])
    try:
        with caplog.at_level(logging.INFO):
            key = kit.relay(port=25).deliver(MESSAGE)
            kit.work()
    finally:
        kit.close()
    assert kit.outbox.waiting() == [key] and "configuration with 127.0.0.1:25" in caplog.text
