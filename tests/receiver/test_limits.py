"""Per-client session accounting (issue 11, Slowloris) and the log formatter, without processes.

The same limits over real SMTP: tests/reliability/test_attacks_receiver.py.
"""

from __future__ import annotations

import logging

from lamson.logs import SafeFormatter, escape_controls
from lamson.receiver.server import Sessions, client_of


def test_client_of_groups_ipv6_by_64() -> None:
    assert client_of(("192.0.2.7", 25)) == "192.0.2.7"
    assert client_of(("2001:db8:1:2::5", 25, 0, 0)) == "2001:db8:1:2::/64"
    assert client_of(("2001:db8:1:2:ffff::9", 25, 0, 0)) == client_of(("2001:db8:1:2::5", 25, 0, 0))
    assert client_of(("2001:db8:1:3::5", 25, 0, 0)) != client_of(("2001:db8:1:2::5", 25, 0, 0))
    assert client_of(("::ffff:192.0.2.7", 25, 0, 0)) == "192.0.2.7"
    assert client_of(("fe80::1%eth0", 25, 0, 2)) == "fe80::/64"
    assert client_of("/run/lamson.sock") == "/run/lamson.sock"


def test_sessions_limit_in_all_and_per_client() -> None:
    sessions = Sessions(limit=5, per_client=2)
    sessions.add("a")
    sessions.add("a")
    assert "max_connections_per_ip" in (sessions.refusal("a") or "")
    assert sessions.refusal("b") is None
    sessions.add("b")
    sessions.add("c")
    sessions.add("d")
    assert "max_connections" in (sessions.refusal("e") or "") and "per_ip" not in (sessions.refusal("e") or "")
    for client in ("a", "a", "b", "c", "d"):
        sessions.remove(client)
    assert sessions.open == 0 and sessions.by_client == {}
    assert Sessions(limit=3).per_client == 3  # without a per-client limit: only the total


def test_escape_controls() -> None:
    assert escape_controls("plain jürgen@bücher.example") == "plain jürgen@bücher.example"
    assert escape_controls("a\x1b[2Jb\x07\r\nc\x9b\x7f") == "a\\x1b[2Jb\\x07\\x0d\\x0ac\\x9b\\x7f"
    assert escape_controls("evil\u202efdp.exe") == "evil\\u202efdp.exe"
    assert escape_controls("h\udcffllo") == "h\\xffllo"  # an undecodable octet, as surrogateescape carries it
    assert escape_controls("line\n\tnext\x1b", keep_newlines=True) == "line\n\tnext\\x1b"


def test_safe_formatter_escapes_message_arguments_and_tracebacks() -> None:
    formatter = SafeFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("lamson.receiver", logging.WARNING, __file__, 1,
                               "unrecognised: %s from %r", ("\x1b]0;owned\x07", "\x1b[31m"), None)
    assert formatter.format(record) == "WARNING unrecognised: \\x1b]0;owned\\x07 from '\\x1b[31m'"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "fake\r\n2026-11-30 lamson INFO forged", (), None)
    assert "\n" not in formatter.format(record) and "\r" not in formatter.format(record)
    try:
        raise ValueError("bad \x1b[2J")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    text = formatter.format(record)
    assert "\x1b" not in text and "\\x1b[2J" in text and "\n    Traceback" in text  # an indented block
