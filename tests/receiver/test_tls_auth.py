"""STARTTLS, required TLS and the AUTH submission listener (issue 13, item 4), over real TLS.

Certificates come from a trustme CA made here; the client is smtplib with
``starttls(context=...)`` trusting only that CA, against the real receiver
process (``lamson receiver``).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme

from lamson.receiver.auth import (
    AuthConfigError,
    UsersAuthenticator,
    hash_password,
    load_users,
    verify_password,
)
from lamson.receiver.server import ListenerSecurity, ReceiverError
from lamson.spool import MaildirSpool
from tests.support import BIN, free_port, make_project, run_lamson, spawn, stop_process, wait_for, wait_port

MESSAGE = "From: alice@test.com\r\nTo: someone@elsewhere.example\r\nSubject: submitted\r\n\r\nHello.\r\n"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def write_tls(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def start(project: dict, extra_ports: tuple[int, ...] = ()) -> object:
    root = project["root"]
    proc = spawn([str(BIN / "lamson"), "receiver", "-root", str(root)], cwd=root, log=root / "receiver.log")
    try:
        for port in [project["receiver_port"], *extra_ports]:
            wait_port(port, timeout=20)
    except AssertionError:
        stop_process(proc)
        raise AssertionError((root / "receiver.log").read_text()) from None
    return proc


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory, redis_url: str, ca: trustme.CA) -> Iterator[dict]:
    """STARTTLS offered (not required) on the main port, and a submission listener."""
    base = tmp_path_factory.mktemp("tlsauth")
    cert, key = write_tls(ca, base / "tls")
    users = base / "submission_users"
    users.write_text(f"# submission users\nalice:{hash_password('correct horse')}\n\nbob:{hash_password('b0b')}\n"
                     f"slow:{hash_password('pw', p=24)}\n")  # about a second per check
    submission_port = free_port()
    extra = (f"served_domains = ['test.com']\nmax_recipients = 3\nsubmission_max_recipients = 6\n"
             f"receiver_tls = {{'cert': {str(cert)!r}, 'key': {str(key)!r}}}\n"
             f"submission_config = {{'host': '127.0.0.1', 'port': {submission_port}, 'users': {str(users)!r}}}\n")
    project = make_project(base / "app", redis_url, extra=extra)
    proc = start(project, (submission_port,))
    try:
        yield {**project, "submission_port": submission_port, "proc": proc,
               "spool": MaildirSpool(project["root"] / "run" / "spool"), "context": client_context(ca)}
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def required(tmp_path_factory: pytest.TempPathFactory, redis_url: str, ca: trustme.CA) -> Iterator[dict]:
    """receiver_tls with "require": True."""
    base = tmp_path_factory.mktemp("tlsrequired")
    cert, key = write_tls(ca, base / "tls")
    extra = (f"served_domains = ['test.com']\n"
             f"receiver_tls = {{'cert': {str(cert)!r}, 'key': {str(key)!r}, 'require': True}}\n")
    project = make_project(base / "app", redis_url, extra=extra)
    proc = start(project)
    try:
        yield {**project, "proc": proc, "spool": MaildirSpool(project["root"] / "run" / "spool"),
               "context": client_context(ca)}
    finally:
        stop_process(proc)


def spooled_with(spool: MaildirSpool, subject: str) -> object:
    def find() -> object:
        for key in spool.keys():
            item = spool.get(key)
            if f"Subject: {subject}".encode() in item.data:
                return item
        return None
    return wait_for(find, 10, what=f"the spooled message {subject!r}")


# -- STARTTLS on the main port ------------------------------------------------------------------

def test_starttls_is_offered_and_recorded_but_auth_is_not(receiver: dict) -> None:
    with smtplib.SMTP("127.0.0.1", receiver["receiver_port"], timeout=15) as smtp:
        smtp.ehlo("client.example.org")
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        code, _ = smtp.starttls(context=receiver["context"])
        assert code == 220
        smtp.ehlo("client.example.org")
        assert not smtp.has_extn("auth")  # AUTH only on the submission listener
        with pytest.raises(smtplib.SMTPNotSupportedError):
            smtp.login("alice", "correct horse")
        # TLS alone does not make anyone a relay.
        smtp.mail("sender@example.org")
        assert smtp.rcpt("victim@elsewhere.example")[0] == 550
        assert smtp.rcpt("hello@test.com")[0] == 250
        smtp.data(b"From: sender@example.org\r\nSubject: over-tls\r\n\r\nHi.\r\n")
    item = spooled_with(receiver["spool"], "over-tls")
    assert item.envelope.extra["protocol"] == "ESMTPS"
    assert item.envelope.extra["tls"].startswith("TLSv1.")
    assert "auth" not in item.envelope.extra
    assert b"with ESMTPS id" in item.data


def test_plain_clients_still_work_when_tls_is_not_required(receiver: dict) -> None:
    with smtplib.SMTP("127.0.0.1", receiver["receiver_port"], timeout=15) as smtp:
        assert smtp.sendmail("sender@example.org", ["hello@test.com"],
                             b"From: sender@example.org\r\nSubject: plain\r\n\r\nHi.\r\n") == {}
        smtp.mail("sender@example.org")
        assert smtp.rcpt("victim@elsewhere.example")[0] == 550
    assert spooled_with(receiver["spool"], "plain").envelope.extra == {"protocol": "ESMTP"}


def test_require_tls_refuses_mail_before_starttls_with_530(required: dict) -> None:
    with smtplib.SMTP("127.0.0.1", required["receiver_port"], timeout=15) as smtp:
        smtp.ehlo("client.example.org")
        code, text = smtp.mail("sender@example.org")
        assert (code, text[:5]) == (530, b"5.7.0")
        assert smtp.docmd("RCPT TO:<hello@test.com>")[0] == 530
        smtp.starttls(context=required["context"])
        smtp.ehlo("client.example.org")
        assert smtp.mail("sender@example.org")[0] == 250
        assert smtp.rcpt("victim@elsewhere.example")[0] == 550
        assert smtp.rcpt("hello@test.com")[0] == 250
        assert smtp.data(b"From: sender@example.org\r\nSubject: required\r\n\r\nHi.\r\n")[0] == 250
    assert spooled_with(required["spool"], "required").envelope.extra["protocol"] == "ESMTPS"


def test_a_client_that_does_not_trust_the_certificate_cannot_start_tls(required: dict) -> None:
    with smtplib.SMTP("127.0.0.1", required["receiver_port"], timeout=15) as smtp:
        smtp.ehlo("client.example.org")
        with pytest.raises(ssl.SSLCertVerificationError):
            smtp.starttls(context=ssl.create_default_context())  # the system CAs only


# -- the submission listener --------------------------------------------------------------------

def test_submission_requires_starttls_before_mail_and_auth(receiver: dict) -> None:
    with smtplib.SMTP("127.0.0.1", receiver["submission_port"], timeout=15) as smtp:
        smtp.ehlo("client.example.org")
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")  # no AUTH offered in clear text
        code, text = smtp.docmd("AUTH PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=")  # \0alice\0correct horse
        assert (code, text[:5]) == (530, b"5.7.0")
        assert smtp.mail("alice@test.com")[0] == 530
        smtp.starttls(context=receiver["context"])
        smtp.ehlo("client.example.org")
        assert smtp.has_extn("auth")
        assert set(smtp.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}


def test_wrong_password_gets_535_and_repeated_failures_close_the_session(receiver: dict) -> None:
    with smtplib.SMTP("127.0.0.1", receiver["submission_port"], timeout=15) as smtp:
        smtp.starttls(context=receiver["context"])
        smtp.ehlo("client.example.org")
        smtp.user, smtp.password = "alice", "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.auth("PLAIN", smtp.auth_plain)
        assert refused.value.smtp_code == 535
        smtp.user = "mallory"  # an unknown user: the same answer
        with pytest.raises(smtplib.SMTPAuthenticationError) as unknown:
            smtp.auth("LOGIN", smtp.auth_login)
        assert unknown.value.smtp_code == 535
        # Still unauthenticated: the open-relay rule holds.
        smtp.mail("alice@test.com")
        assert smtp.rcpt("victim@elsewhere.example")[0] == 550
        smtp.rset()
        with pytest.raises(smtplib.SMTPResponseException) as third:
            smtp.auth("PLAIN", smtp.auth_plain)
        assert third.value.smtp_code in (535, 421)
        code, _ = smtp.docmd("NOOP") if third.value.smtp_code == 535 else (421, b"")
        assert code == 421  # closed after the third failure


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_authenticated_client_may_relay_and_the_envelope_says_who(receiver: dict, mechanism: str) -> None:
    subject = f"submitted-{mechanism}"
    with smtplib.SMTP("127.0.0.1", receiver["submission_port"], timeout=15) as smtp:
        smtp.starttls(context=receiver["context"])
        smtp.ehlo("client.example.org")
        smtp.user, smtp.password = "alice", "correct horse"
        code, _ = smtp.auth(mechanism, smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login)
        assert code == 235
        smtp.mail("alice@test.com")
        assert smtp.rcpt("someone@elsewhere.example")[0] == 250
        assert smtp.rcpt("other@another.example.net")[0] == 250
        assert smtp.data(MESSAGE.replace("submitted", subject).encode())[0] == 250
    item = spooled_with(receiver["spool"], subject)
    assert item.envelope.rcpt_tos == ("someone@elsewhere.example", "other@another.example.net")
    assert item.envelope.extra["auth"] == "alice"
    assert item.envelope.extra["protocol"] == "ESMTPSA"
    assert b"with ESMTPSA id" in item.data


def test_a_slow_password_check_does_not_stall_other_sessions(receiver: dict) -> None:
    """The scrypt check runs off the event loop: another session gets its replies meanwhile."""
    import threading
    import time

    done: dict[str, float] = {}

    def login() -> None:
        with smtplib.SMTP("127.0.0.1", receiver["submission_port"], timeout=15) as smtp:
            smtp.starttls(context=receiver["context"])
            smtp.ehlo("client.example.org")
            smtp.user, smtp.password = "slow", "pw"
            started = time.monotonic()
            assert smtp.auth("PLAIN", smtp.auth_plain)[0] == 235
            done["auth"] = time.monotonic() - started

    with smtplib.SMTP("127.0.0.1", receiver["receiver_port"], timeout=15) as other:
        other.ehlo("client.example.org")
        thread = threading.Thread(target=login)
        thread.start()
        time.sleep(0.4)  # the slow check is under way
        started = time.monotonic()
        assert other.noop()[0] == 250
        noop = time.monotonic() - started
        thread.join(20)
    assert done["auth"] > 0.5, done  # the check really was slow...
    assert noop < 0.3, noop          # ...and the other session did not wait for it


def test_authenticated_clients_get_submission_max_recipients(receiver: dict) -> None:
    with smtplib.SMTP("127.0.0.1", receiver["submission_port"], timeout=15) as smtp:
        smtp.starttls(context=receiver["context"])
        smtp.ehlo("client.example.org")
        smtp.mail("bob@test.com")
        assert [smtp.rcpt(f"r{i}@test.com")[0] for i in range(4)] == [250, 250, 250, 452]
        smtp.rset()
        smtp.login("bob", "b0b")
        smtp.mail("bob@test.com")
        assert [smtp.rcpt(f"r{i}@x.example")[0] for i in range(7)] == [250] * 6 + [452]


def test_unauthenticated_client_on_submission_keeps_the_open_relay_rules(receiver: dict) -> None:
    with smtplib.SMTP("127.0.0.1", receiver["submission_port"], timeout=15) as smtp:
        smtp.starttls(context=receiver["context"])
        smtp.ehlo("client.example.org")
        smtp.mail("sender@example.org")
        code, text = smtp.rcpt("victim@elsewhere.example")
        assert (code, text[:5]) == (550, b"5.7.1")
        assert smtp.rcpt("hello@test.com")[0] == 250


def test_starttls_resets_authentication(receiver: dict) -> None:
    """AUTH is per TLS session: STARTTLS again is refused, a new connection starts unauthenticated."""
    with smtplib.SMTP("127.0.0.1", receiver["submission_port"], timeout=15) as smtp:
        smtp.starttls(context=receiver["context"])
        smtp.login("alice", "correct horse")
        assert smtp.docmd("STARTTLS")[0] in (454, 500, 503)  # no TLS-in-TLS
    with smtplib.SMTP("127.0.0.1", receiver["submission_port"], timeout=15) as smtp:
        smtp.starttls(context=receiver["context"])
        smtp.ehlo("client.example.org")
        smtp.mail("alice@test.com")
        assert smtp.rcpt("someone@elsewhere.example")[0] == 550


# -- users file, hashes and settings ------------------------------------------------------------

def test_hash_and_verify() -> None:
    stored = hash_password("s3cret", n=1024)
    assert stored.startswith("scrypt$1024$8$1$")
    assert verify_password(b"s3cret", stored)
    assert not verify_password(b"s3cret ", stored)
    assert not verify_password(b"s3cret", "scrypt$1024$8$1$!!$??")
    assert not verify_password(b"s3cret", "md5$abc")
    assert hash_password("s3cret", n=1024) != stored  # salted


def test_authenticator_never_says_which_users_exist() -> None:
    auth = UsersAuthenticator({"alice": hash_password("pw", n=1024)})
    assert auth.check(b"alice", b"pw") == "alice"
    assert auth.check(b"alice", b"nope") is None
    assert auth.check(b"nobody", b"pw") is None
    assert auth.check(b"\xff", b"pw") is None


def test_users_file_errors_name_the_line(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('pw', n=1024)}\nbob:plaintext\n")
    with pytest.raises(AuthConfigError, match="line 2"):
        load_users(users)
    with pytest.raises(AuthConfigError, match="missing"):
        load_users(tmp_path / "missing")


def settings(**values: object) -> SimpleNamespace:
    return SimpleNamespace(**{"receiver_tls": None, "submission_config": None, **values})


def test_settings_that_cannot_work_are_refused(tmp_path: Path, ca: trustme.CA) -> None:
    cert, key = write_tls(ca, tmp_path)
    users = tmp_path / "users"
    users.write_text("")
    submission = {"host": "127.0.0.1", "port": 8587, "users": str(users)}
    with pytest.raises(ReceiverError, match="needs receiver_tls"):
        ListenerSecurity(settings(submission_config=submission))
    with pytest.raises(ReceiverError, match="'cert' and 'key'"):
        ListenerSecurity(settings(receiver_tls={"cert": str(cert)}))
    with pytest.raises(ReceiverError, match="cannot load certificate"):
        ListenerSecurity(settings(receiver_tls={"cert": str(key), "key": str(cert)}))
    with pytest.raises(ReceiverError, match="needs 'users'"):
        ListenerSecurity(settings(receiver_tls={"cert": str(cert), "key": str(key)},
                                  submission_config={"host": "127.0.0.1", "port": 8587}))
    ok = ListenerSecurity(settings(receiver_tls={"cert": str(cert), "key": str(key), "require": True},
                                   submission_config=submission))
    assert ok.context is not None and ok.require_tls and ok.authenticator is not None
    plain = ListenerSecurity(settings())
    assert plain.context is None and plain.authenticator is None and not plain.require_tls


def test_lamson_passwd_writes_a_line_the_receiver_accepts(tmp_path: Path) -> None:
    users = tmp_path / "submission_users"
    users.write_text("# users\nalice:scrypt$1$1$1$AA==$AA==\n")
    for password in ("first", "second"):  # the second replaces alice's line
        done = run_lamson("passwd", "alice", "-file", str(users), "-stdin", cwd=tmp_path, input=f"{password}\n".encode())
        assert done.returncode == 0, done.stderr
    assert users.stat().st_mode & 0o777 == 0o600
    loaded = load_users(users)
    assert list(loaded) == ["alice"]
    assert verify_password(b"second", loaded["alice"]) and not verify_password(b"first", loaded["alice"])
    printed = run_lamson("passwd", "bob", "-stdin", cwd=tmp_path, input=b"pw\n")
    user, _, stored = printed.stdout.decode().strip().partition(":")
    assert user == "bob" and verify_password(b"pw", stored)
    bad = run_lamson("passwd", "a:b", "-stdin", cwd=tmp_path, input=b"pw\n")
    assert bad.returncode != 0 and b"bad user name" in bad.stderr and b"Traceback" not in bad.stderr
