"""Attacks and bad input at the receiver: a golden table, input -> expected reply.

Like Postfix's smtpd_check tests, every row is a short SMTP dialogue typed
over a raw socket at the real receiver process (``lamson receiver``), with
the reply each line must get and how many messages the dialogue may leave in
the spool. Raw sockets, because smtplib would repair exactly the input we
want to send (bare LF, NUL, over-long lines, out-of-order commands).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamson.spool import MaildirSpool
from tests.support import BIN, make_project, spawn, stop_process, wait_for, wait_port

LIMITS = r"""
max_message_size = 20000
max_recipients = 5
max_received_headers = 30
max_connections = 6
smtp_timeout = 3
smtp_session_timeout = 6
# As regexes: under re.IGNORECASE alone, test\.com matched te\u017ft.com (long s) (issue 11).
served_domains = [r"test\.com", r"(.+\.)?lists\.example\.com"]
"""


class Wire:
    """One raw SMTP session: send bytes, read whole (possibly multi-line) replies."""

    def __init__(self, port: int, timeout: float = 15.0, source: str | None = None) -> None:
        # source: another loopback address (127.0.0.2, ...) plays another client.
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode("utf-8", "surrogateescape") + b"\r\n" if isinstance(data, str) else data)

    def reply(self) -> str:
        """The next complete reply; '' if the server closed the connection first."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                try:
                    chunk = self.sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    return "\n".join(lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def closed_by_server(self, within: float = 20.0) -> bool:
        """True when the server ends the session (EOF or reset) within ``within`` seconds."""
        self.sock.settimeout(within)
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.sock.close()


def start_receiver(root: Path, port: int) -> object:
    proc = spawn([str(BIN / "lamson"), "receiver", "-root", str(root)], cwd=root, log=root / "receiver.log")
    try:
        wait_port(port, timeout=20)
    except AssertionError:
        stop_process(proc)
        raise AssertionError((root / "receiver.log").read_text()) from None
    return proc


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[dict]:
    project = make_project(tmp_path_factory.mktemp("attacks") / "app", redis_url, extra=LIMITS)
    proc = start_receiver(project["root"], project["receiver_port"])
    try:
        yield {**project, "proc": proc, "spool": MaildirSpool(project["root"] / "run" / "spool")}
    finally:
        stop_process(proc)


def bare_eol(data: bytes) -> bool:
    """True if ``data`` has a CR not followed by LF or an LF not preceded by CR."""
    crlf = data.count(b"\r\n")
    return data.count(b"\r") != crlf or data.count(b"\n") != crlf


EHLO = ("EHLO client.example.org", "250")
MAIL = ("MAIL FROM:<sender@example.org>", "250")
RCPT = ("RCPT TO:<hello@test.com>", "250")
DATA = ("DATA", "354")
UTF8_MAIL = ("MAIL FROM:<sender@example.org> SMTPUTF8", "250")
BODY = b"From: sender@example.org\r\nTo: hello@test.com\r\nSubject: golden\r\n\r\nHello.\r\n.\r\n"
HOP = b"Received: from relay%d.example.org by relay%d.example.org; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
HOPS_30 = b"".join(HOP % (i, i + 1) for i in range(30))
HOPS = HOPS_30 + HOP % (30, 31)


def message_with(head: bytes = b"", body: bytes = b"Hello.\r\n") -> bytes:
    return head + b"From: sender@example.org\r\nSubject: golden\r\n\r\n" + body + b".\r\n"


#: name -> (dialogue, messages it may leave in the spool). A dialogue is a list of
#: (what the client sends, how the reply must start). A str is one command line
#: (CRLF added); bytes are sent exactly as given.
GOLDEN: dict[str, tuple[list[tuple[str | bytes, str]], int]] = {
    # The baseline: a clean transaction is accepted.
    "clean message": ([EHLO, MAIL, RCPT, DATA, (BODY, "250 2.0.0")], 1),
    "HELO works too": ([("HELO client.example.org", "250"), MAIL, RCPT, DATA, (BODY, "250")], 1),
    # Commands out of order, unknown commands, bad syntax.
    "MAIL before HELO": ([("MAIL FROM:<sender@example.org>", "503")], 0),
    "RCPT before MAIL": ([EHLO, ("RCPT TO:<hello@test.com>", "503")], 0),
    "DATA before RCPT": ([EHLO, MAIL, ("DATA", "503")], 0),
    "nested MAIL": ([EHLO, MAIL, ("MAIL FROM:<other@example.org>", "503")], 0),
    "DATA with an argument": ([EHLO, MAIL, RCPT, ("DATA now", "501")], 0),
    "unknown command": ([EHLO, ("XYZZY plugh", "500")], 0),
    "empty command line": ([EHLO, ("", "500")], 0),
    "non-ASCII command": ([EHLO, ("MÄIL FROM:<a@example.org>", "500")], 0),
    "RSET clears the transaction": ([EHLO, MAIL, RCPT, ("RSET", "250"), ("DATA", "503")], 0),
    "EXPN is not offered": ([EHLO, ("EXPN staff", "502")], 0),
    "VRFY does not disclose": ([EHLO, ("VRFY hello@test.com", "252")], 0),
    # Limits.
    "command line over 512 octets": ([EHLO, ("NOOP " + "x" * 600, "500")], 0),
    "command line far over the stream limit": ([EHLO, ("NOOP " + "x" * 5000, "500"), ("NOOP", "250")], 0),
    "MAIL line over 512 octets": ([EHLO, ("MAIL FROM:<" + "a" * 600 + "@example.org>", "500")], 0),
    "text line of 998 octets is fine": ([EHLO, MAIL, RCPT, DATA, (message_with(body=b"y" * 998 + b"\r\n"), "250")], 1),
    "text line over 1000 octets": ([EHLO, MAIL, RCPT, DATA, (message_with(body=b"y" * 1200 + b"\r\n"), "500"),
                                    ("NOOP", "250")], 0),
    "SIZE over the limit at MAIL": ([EHLO, ("MAIL FROM:<sender@example.org> SIZE=20001", "552"), MAIL], 0),
    "SIZE not a number": ([EHLO, ("MAIL FROM:<sender@example.org> SIZE=lots", "501")], 0),
    "unknown MAIL parameter": ([EHLO, ("MAIL FROM:<sender@example.org> EVIL=1", "555")], 0),
    "data over the limit at end of DATA": ([EHLO, MAIL, RCPT, DATA,
                                            (message_with(body=(b"z" * 78 + b"\r\n") * 300), "552"),
                                            ("NOOP", "250")], 0),
    "more recipients than the limit": ([EHLO, MAIL] + [(f"RCPT TO:<r{i}@test.com>", "250") for i in range(5)]
                                       + [("RCPT TO:<r5@test.com>", "452 4.5.3"), DATA, (BODY, "250")], 1),
    # Addresses.
    "null sender is legal": ([EHLO, ("MAIL FROM:<>", "250"), RCPT, DATA, (BODY, "250")], 1),
    "postmaster without a domain": ([EHLO, MAIL, ("RCPT TO:<postmaster>", "250"), ("RCPT TO:<PostMaster>", "250")], 0),
    "postmaster is no sender": ([EHLO, ("MAIL FROM:<postmaster>", "553")], 0),
    "bare address tolerated": ([EHLO, ("MAIL FROM:sender@example.org", "250"), ("RCPT TO:hello@test.com", "250")], 0),
    "a b c as sender": ([EHLO, ("MAIL FROM:a b c", "553")], 0),
    "a b c as recipient": ([EHLO, MAIL, ("RCPT TO:a b c", "553")], 0),
    "spaces inside brackets": ([EHLO, MAIL, ("RCPT TO:<a b@test.com>", "553")], 0),
    "NUL in sender": ([EHLO, ("MAIL FROM:<send\x00er@example.org>", "553")], 0),
    "NUL in recipient": ([EHLO, MAIL, ("RCPT TO:<hel\x00lo@test.com>", "553")], 0),
    "source route sender": ([EHLO, ("MAIL FROM:<@a.org,@b.org:user@example.org>", "553")], 0),
    "source route recipient": ([EHLO, MAIL, ("RCPT TO:<@a.org,@b.org:user@test.com>", "553")], 0),
    "percent hack": ([EHLO, MAIL, ("RCPT TO:<victim%example.net@test.com>", "553")], 0),
    "bang path": ([EHLO, MAIL, ("RCPT TO:<example.net!victim@test.com>", "553")], 0),
    "quoted local part hiding @": ([EHLO, MAIL, ('RCPT TO:<"victim@example.net"@test.com>', "553")], 0),
    "quoted local part without @ is fine": ([EHLO, MAIL, ('RCPT TO:<"john smith"@test.com>', "250")], 0),
    "local part over 64 octets": ([EHLO, MAIL, ("RCPT TO:<" + "l" * 65 + "@test.com>", "553")], 0),
    "domain over 255 octets": ([EHLO, ("MAIL FROM:<u@" + ".".join(["d" * 60] * 5) + ">", "553")], 0),
    "path over 256 octets": ([EHLO, ("MAIL FROM:<" + "l" * 64 + "@" + ".".join(["d" * 62] * 3) + ".org>", "553")], 0),
    "label over 63 octets": ([EHLO, ("MAIL FROM:<u@" + "d" * 64 + ".org>", "553")], 0),
    "empty recipient": ([EHLO, MAIL, ("RCPT TO:<>", "553")], 0),
    "trailing dot domain": ([EHLO, MAIL, ("RCPT TO:<hello@test.com.>", "553")], 0),
    "unterminated path": ([EHLO, ("MAIL FROM:<sender@example.org", "553")], 0),
    "invalid UTF-8 in address": ([EHLO, MAIL, (b"RCPT TO:<h\xffllo@test.com>\r\n", "553")], 0),
    # Issue 11: UTF-8 addresses only in a transaction that declared SMTPUTF8 (RFC 6531).
    "UTF-8 sender without SMTPUTF8": ([EHLO, ("MAIL FROM:<jos\u00e9@example.org>", "553 5.6.7"), MAIL], 0),
    "UTF-8 recipient without SMTPUTF8": ([EHLO, MAIL, ("RCPT TO:<jos\u00e9@test.com>", "553 5.6.7"), RCPT], 0),
    "UTF-8 domain without SMTPUTF8": ([EHLO, MAIL, ("RCPT TO:<a@l\u0131sts.example.com>", "553 5.6.7")], 0),
    "UTF-8 with SMTPUTF8": ([EHLO, ("MAIL FROM:<jos\u00e9@example.org> SMTPUTF8", "250"),
                             ("RCPT TO:<jos\u00e9@test.com>", "250"), DATA, (BODY, "250")], 1),
    "SMTPUTF8 lasts one transaction": ([EHLO, UTF8_MAIL, ("RSET", "250"), MAIL,
                                        ("RCPT TO:<jos\u00e9@test.com>", "553 5.6.7")], 0),
    # Issue 11: bidirectional controls and invisible characters, even with SMTPUTF8.
    "right-to-left override in a recipient": ([EHLO, UTF8_MAIL, ("RCPT TO:<moc.\u202eevil@test.com>", "553 5.1.3")], 0),
    "right-to-left override in a sender": ([EHLO, ("MAIL FROM:<gpj.\u202eexe@example.org> SMTPUTF8", "553 5.1.3")], 0),
    "bidi isolate in a domain": ([EHLO, UTF8_MAIL, ("RCPT TO:<hello@te\u2067st.com>", "553 5.1.3")], 0),
    "zero width space in a recipient": ([EHLO, UTF8_MAIL, ("RCPT TO:<hel\u200blo@test.com>", "553 5.1.3")], 0),
    "C1 control in a recipient": ([EHLO, UTF8_MAIL, ("RCPT TO:<hel\u009blo@test.com>", "553 5.1.3")], 0),
    # Open relay: only the application's domains, whoever asks (this client is 127.0.0.1).
    "foreign domain": ([EHLO, MAIL, ("RCPT TO:<victim@example.net>", "550 5.7.1")], 0),
    "served domain as a suffix": ([EHLO, MAIL, ("RCPT TO:<victim@test.com.example.net>", "550 5.7.1")], 0),
    "subdomain of a served domain": ([EHLO, MAIL, ("RCPT TO:<victim@evil.test.com>", "550 5.7.1")], 0),
    "look-alike of a served domain": ([EHLO, MAIL, ("RCPT TO:<victim@testXcom>", "550 5.7.1")], 0),
    "address literal": ([EHLO, MAIL, ("RCPT TO:<victim@[127.0.0.1]>", "550 5.7.1")], 0),
    "served domain in any case": ([EHLO, MAIL, ("RCPT TO:<Hello@TEST.COM>", "250")], 0),
    "served pattern in any case": ([EHLO, MAIL, ("RCPT TO:<a@LISTS.Example.COM>", "250"),
                                    ("RCPT TO:<a@sub.lists.example.com>", "250")], 0),
    # Issue 11: case folding in ASCII only, so no Unicode look-alike passes for a served domain.
    "dotless i look-alike of a served pattern": ([EHLO, UTF8_MAIL, ("RCPT TO:<a@l\u0131sts.example.com>", "550 5.7.1")], 0),
    "long s look-alike of a served domain": ([EHLO, UTF8_MAIL, ("RCPT TO:<a@te\u017ft.com>", "550 5.7.1")], 0),
    "dotted capital I look-alike": ([EHLO, UTF8_MAIL, ("RCPT TO:<a@L\u0130STS.example.com>", "550 5.7.1")], 0),
    "mixed: only the served recipient is kept": ([EHLO, MAIL, ("RCPT TO:<victim@example.net>", "550 5.7.1"), RCPT,
                                                  DATA, (BODY, "250")], 1),
    "null sender to a foreign domain": ([EHLO, ("MAIL FROM:<>", "250"), ("RCPT TO:<victim@example.net>", "550 5.7.1")], 0),
    # Mail loops: the limit is 30 Received headers.
    "30 Received headers pass": ([EHLO, MAIL, RCPT, DATA, (message_with(HOPS_30), "250")], 1),
    "31 Received headers: loop": ([EHLO, MAIL, RCPT, DATA, (message_with(HOPS), "554 5.4.6"), ("NOOP", "250")], 0),
    "Received lines in the body do not count": ([EHLO, MAIL, RCPT, DATA, (message_with(body=HOPS), "250")], 1),
    # Content.
    "NUL in the body": ([EHLO, MAIL, RCPT, DATA, (message_with(body=b"a\x00b\r\n"), "554 5.6.0"), ("NOOP", "250")], 0),
    "NUL in a header": ([EHLO, MAIL, RCPT, DATA, (message_with(head=b"X-Evil: a\x00b\r\n"), "554 5.6.0")], 0),
    "bare LF and CR in the body are accepted (normalised)": (
        [EHLO, MAIL, RCPT, DATA, (message_with(body=b"one\ntwo\rthree\r\n"), "250")], 1),
}

#: The end-of-data look-alikes of SMTP smuggling (SEC Consult, Dec 2023), and NUL variants.
SMUGGLING = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r\n.\n", b"\n\n.\r\n",
             b"\r\n\x00.\r\n", b"\r\n.\x00\r\n", b"\n\x00.\n", b"\x00\n.\n"]
SMUGGLED = (b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<victim@test.com>\r\nDATA\r\n"
            b"From: admin@example.org\r\nSubject: smuggled\r\n\r\nI am a second message.\r\n")


def converse(port: int, dialogue: list[tuple[str | bytes, str]]) -> list[str]:
    wire = Wire(port)
    try:
        assert wire.greeting.startswith("220 "), wire.greeting
        replies = []
        for sent, expected in dialogue:
            wire.send(sent)
            reply = wire.reply()
            replies.append(reply)
            assert reply.startswith(expected), (sent if len(sent) < 200 else sent[:200], expected, reply)
        wire.send("QUIT")
        assert wire.reply().startswith("221"), "an extra reply came before QUIT's 221"
        return replies
    finally:
        wire.close()


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden(receiver: dict, name: str) -> None:
    dialogue, spooled = GOLDEN[name]
    before = set(receiver["spool"].keys())
    converse(receiver["receiver_port"], dialogue)
    new = set(receiver["spool"].keys()) - before
    assert len(new) == spooled
    for key in new:
        stored = receiver["spool"].get(key)
        assert not bare_eol(stored.data) and b"\x00" not in stored.data
        assert all(r.endswith("@test.com") for r in stored.envelope.rcpt_tos), stored.envelope


@pytest.mark.parametrize("sequence", SMUGGLING, ids=[repr(s)[2:-1] for s in SMUGGLING])
def test_smuggling_never_splits_a_transaction(receiver: dict, sequence: bytes) -> None:
    before = set(receiver["spool"].keys())
    content = b"From: sender@example.org\r\nSubject: carrier\r\n\r\nbefore" + sequence + SMUGGLED + b"\r\n.\r\n"
    expected = "554 5.6.0" if b"\x00" in sequence else "250 2.0.0"
    # One reply for the whole DATA, then QUIT's 221: the "commands" inside were never run.
    converse(receiver["receiver_port"], [EHLO, MAIL, RCPT, DATA, (content, expected)])
    new = set(receiver["spool"].keys()) - before
    assert len(new) == (0 if b"\x00" in sequence else 1)
    for key in new:
        stored = receiver["spool"].get(key)
        assert stored.envelope.rcpt_tos == ("hello@test.com",)
        assert stored.envelope.mail_from == "sender@example.org"
        assert b"Subject: carrier" in stored.data and b"I am a second message." in stored.data
        assert not bare_eol(stored.data)


def test_null_sender_is_stored_as_the_empty_path(receiver: dict) -> None:
    before = set(receiver["spool"].keys())
    converse(receiver["receiver_port"], [EHLO, ("MAIL FROM:<>", "250"), RCPT, DATA, (BODY, "250")])
    (key,) = set(receiver["spool"].keys()) - before
    assert receiver["spool"].get(key).envelope.mail_from == ""


def test_too_many_connections_get_421(receiver: dict) -> None:
    port = receiver["receiver_port"]
    held: list[Wire] = []
    try:
        # Earlier sessions may still be closing on the server side: retry until all 6 slots are ours.
        def fill() -> bool:
            while len(held) < 6:
                wire = Wire(port)
                if not wire.greeting.startswith("220"):
                    wire.close()
                    return False
                held.append(wire)
            return True

        wait_for(fill, 20, 0.2, "six open sessions")
        extra = Wire(port)
        assert extra.greeting.startswith("421 4.7.0"), extra.greeting
        assert extra.closed_by_server()
        extra.close()
        for wire in held:  # the held sessions still work
            wire.send("NOOP")
            assert wire.reply().startswith("250")
        held.pop().close()

        def slot_free() -> bool:
            wire = Wire(port)
            ok = wire.greeting.startswith("220")
            wire.close()
            return ok

        wait_for(slot_free, 20, 0.2, "a freed slot to accept a session")
    finally:
        for wire in held:
            wire.close()


def test_idle_client_is_cut(receiver: dict) -> None:
    wire = Wire(receiver["receiver_port"])
    try:
        wire.send("EHLO idle.example.org")
        assert wire.reply().startswith("250")
        assert wire.closed_by_server(within=20)
    finally:
        wire.close()


def drip(wire: Wire, data: bytes, seconds: float) -> bool:
    """Send ``data`` one byte per 0.3 s; True if the server cut the session meanwhile."""
    deadline = time.monotonic() + seconds
    wire.sock.settimeout(0.3)
    for byte in data:
        if time.monotonic() > deadline:
            return False
        try:
            wire.sock.sendall(bytes([byte]))
            if wire.sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def test_byte_dripping_command_is_cut(receiver: dict) -> None:
    wire = Wire(receiver["receiver_port"])
    try:
        assert drip(wire, b"EHLO " + b"x" * 200 + b"\r\n", seconds=25)
    finally:
        wire.close()


def test_byte_dripping_data_is_cut_and_nothing_spooled(receiver: dict) -> None:
    before = set(receiver["spool"].keys())
    wire = Wire(receiver["receiver_port"])
    try:
        for sent, expected in (EHLO, MAIL, RCPT, DATA):
            wire.send(sent)
            assert wire.reply().startswith(expected)
        assert drip(wire, b"Subject: slow\r\n\r\n" + b"y" * 200 + b"\r\n.\r\n", seconds=25)
    finally:
        wire.close()
    assert set(receiver["spool"].keys()) == before


def test_busy_but_endless_session_is_cut(receiver: dict) -> None:
    """NOOP every half second keeps aiosmtpd's idle timer happy; the session deadline still ends it.

    (With a transaction open, so the start deadline is not what ends it.)
    """
    wire = Wire(receiver["receiver_port"])
    try:
        for sent, expected in (EHLO, MAIL):
            wire.send(sent)
            assert wire.reply().startswith(expected)
        deadline = time.monotonic() + 30
        last = ""
        while time.monotonic() < deadline:
            try:
                wire.send("NOOP")
            except (BrokenPipeError, ConnectionResetError):
                break
            last = wire.reply()
            if not last.startswith("250"):
                break
            time.sleep(0.5)
        assert last.startswith("421 4.4.2") or last == "", last
        assert wire.closed_by_server()
    finally:
        wire.close()


def test_receiver_survived(receiver: dict) -> None:
    """After all of the above, the same process still accepts mail."""
    assert receiver["proc"].poll() is None
    converse(receiver["receiver_port"], [EHLO, MAIL, RCPT, DATA, (BODY, "250")])
    log = (receiver["root"] / "receiver.log").read_text()
    assert "Traceback" not in log and "SMTP session exception" not in log, log[-3000:]


def test_five_unknown_commands_end_the_session(receiver: dict) -> None:
    wire = Wire(receiver["receiver_port"])
    try:
        wire.send("EHLO scanner.example.org")
        assert wire.reply().startswith("250")
        replies = []
        for _ in range(5):
            wire.send("XYZZY")
            replies.append(wire.reply()[:3])
        assert replies == ["500"] * 4 + ["502"]
        assert wire.closed_by_server()
    finally:
        wire.close()


# Issue 11: per-client limits (Slowloris), the default RCPT limit, log sanitising. A receiver
# of its own: a short start deadline and a per-client cap, smtp_timeout long enough that
# only the start deadline can explain a quick cut. max_recipients stays at its default.
GUARDED = """
max_connections = 8
max_connections_per_ip = 3
smtp_start_timeout = 2
smtp_timeout = 60
smtp_session_timeout = 120
"""


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[dict]:
    project = make_project(tmp_path_factory.mktemp("guarded") / "app", redis_url, extra=GUARDED)
    proc = start_receiver(project["root"], project["receiver_port"])
    try:
        yield {**project, "proc": proc, "spool": MaildirSpool(project["root"] / "run" / "spool")}
    finally:
        stop_process(proc)


def dialogue(wire: Wire, steps: list[tuple[str | bytes, str]]) -> None:
    for sent, expected in steps:
        wire.send(sent)
        reply = wire.reply()
        assert reply.startswith(expected), (sent, expected, reply)


def test_one_client_cannot_take_every_slot(guarded: dict) -> None:
    """Three sessions from 127.0.0.2 (each holding a transaction open, so no deadline frees
    them early): the fourth from that address gets 421 4.7.0; another client still gets in."""
    port = guarded["receiver_port"]
    held: list[Wire] = []
    try:
        def fill() -> bool:  # sessions of an earlier test may still be closing server-side
            while len(held) < 3:
                wire = Wire(port, source="127.0.0.2")
                if not wire.greeting.startswith("220"):
                    wire.close()
                    return False
                dialogue(wire, [EHLO, MAIL])
                held.append(wire)
            return True

        wait_for(fill, 20, 0.2, "three sessions from 127.0.0.2")
        for _ in range(5):
            extra = Wire(port, source="127.0.0.2")
            assert extra.greeting.startswith("421 4.7.0") and "your address" in extra.greeting, extra.greeting
            assert extra.closed_by_server()
            extra.close()
        other = Wire(port, source="127.0.0.3")
        try:
            assert other.greeting.startswith("220"), other.greeting
            dialogue(other, [EHLO, MAIL, RCPT, DATA, (BODY, "250 2.0.0")])
        finally:
            other.close()
        for wire in held:  # the held sessions still work
            dialogue(wire, [("NOOP", "250")])
        held.pop().close()

        def slot_free() -> bool:
            wire = Wire(port, source="127.0.0.2")
            ok = wire.greeting.startswith("220")
            wire.close()
            return ok

        wait_for(slot_free, 20, 0.2, "a freed slot for 127.0.0.2")
    finally:
        for wire in held:
            wire.close()


def test_silent_connection_is_cut_by_the_start_deadline(guarded: dict) -> None:
    wire = Wire(guarded["receiver_port"], source="127.0.0.4", timeout=30)
    try:
        started = time.monotonic()
        assert wire.greeting.startswith("220")
        reply = wire.reply()  # nothing sent: the next thing the server says is goodbye
        elapsed = time.monotonic() - started
        assert reply.startswith("421 4.4.2"), reply
        assert wire.closed_by_server()
        assert 1.0 < elapsed < 30, elapsed  # smtp_start_timeout (2 s), far below smtp_timeout (60 s)
    finally:
        wire.close()


def test_noop_and_rset_do_not_postpone_the_start_deadline(guarded: dict) -> None:
    wire = Wire(guarded["receiver_port"], source="127.0.0.4", timeout=30)
    try:
        dialogue(wire, [EHLO])
        deadline = time.monotonic() + 30
        last = ""
        while time.monotonic() < deadline:
            try:
                wire.send("NOOP")
                last = wire.reply()
                if not last.startswith("250"):
                    break
                wire.send("RSET")
                last = wire.reply()
                if not last.startswith("250"):
                    break
            except (BrokenPipeError, ConnectionResetError):
                last = ""
                break
            time.sleep(0.2)
        assert last.startswith("421 4.4.2") or last == "", last
        assert wire.closed_by_server()
    finally:
        wire.close()


def test_an_open_transaction_is_not_cut_by_the_start_deadline(guarded: dict) -> None:
    before = set(guarded["spool"].keys())
    wire = Wire(guarded["receiver_port"], source="127.0.0.5", timeout=30)
    try:
        dialogue(wire, [EHLO, MAIL])
        time.sleep(4)  # twice smtp_start_timeout, inside a transaction
        dialogue(wire, [("NOOP", "250"), RCPT, DATA, (BODY, "250 2.0.0")])
        # The transaction is over: the deadline runs again, and an idle session is cut.
        assert wire.reply().startswith("421 4.4.2")
        assert wire.closed_by_server()
    finally:
        wire.close()
    assert len(set(guarded["spool"].keys()) - before) == 1


def test_hundred_recipients_get_the_default_limit(guarded: dict) -> None:
    """The attack run's backscatter case: 100 RCPTs offered, max_recipients (default 20) accepted."""
    assert "max_recipients" not in (guarded["root"] / "config" / "settings.py").read_text()
    before = set(guarded["spool"].keys())
    wire = Wire(guarded["receiver_port"], source="127.0.0.6")
    try:
        dialogue(wire, [EHLO, MAIL])
        codes = []
        for i in range(100):
            wire.send(f"RCPT TO:<r{i}@test.com>")
            codes.append(wire.reply()[:9])
        assert codes == ["250 2.1.5"] * 20 + ["452 4.5.3"] * 80
        dialogue(wire, [DATA, (BODY, "250 2.0.0"), ("QUIT", "221")])
    finally:
        wire.close()
    (key,) = set(guarded["spool"].keys()) - before
    assert guarded["spool"].get(key).envelope.rcpt_tos == tuple(f"r{i}@test.com" for i in range(20))


def test_control_characters_are_escaped_in_the_log(guarded: dict) -> None:
    """Terminal escapes typed as SMTP commands and addresses reach the log only as text."""
    log = guarded["root"] / "receiver.log"
    wire = Wire(guarded["receiver_port"], source="127.0.0.7")
    try:
        dialogue(wire, [
            ("\x1b]0;owned\x07\x1b[2J", "500"),  # an unknown command: aiosmtpd logs its name
            ("EHLO \x1b[31mred.example.org", "250"),
            ("MAIL FROM:<a\x1b[5mb@example.org>", "553"),
            ("MAIL FROM:<x@example.org> SMTPUTF8", "250"),
            ("RCPT TO:<gpj.\u202eexe@test.com>", "553"),
            ("RCPT TO:<a\x9b1mb@test.com>", "553"),
            ("QUIT", "221"),
        ])
    finally:
        wire.close()

    def logged() -> bytes:
        text = log.read_bytes()
        return text if b"gpj." in text and b"0;OWNED" in text else b""

    text = wait_for(logged, 15, 0.1, "the dialogue in the receiver's log")
    assert b"\x1b" not in text and b"\x07" not in text and b"\x9b" not in text.replace(b"\\x9b", b"")
    assert "\u202e".encode() not in text
    assert b"\\x1b]0;OWNED\\x07" in text  # the line is there, escaped
    assert b"\\u202e" in text
