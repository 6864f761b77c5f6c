"""Bad uses and help: one line on stderr, the right exit code, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamson import maildir
from lamson.cli import COMMAND_MODULES, main
from lamson.cli.mailing import prepare_sendmail
from tests.cli.conftest import base_env
from tests.support import free_port, run_lamson


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "help")
    assert code == 0
    for name in COMMAND_MODULES:
        assert f"  {name} " in out


@pytest.mark.parametrize("name", sorted(COMMAND_MODULES))
def test_every_command_explains_itself_with_an_example(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, by_help, _ = run_main(capsys, "help", "-for", name)
    assert code == 0
    assert f"lamson {name}" in by_help and "example" in by_help
    for flag in ("--help", "-help"):
        code, out, _ = run_main(capsys, name, flag)
        assert code == 0 and out == by_help


def test_options_take_one_or_two_dashes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "help", "--for", "queue")
    assert code == 0 and "lamson queue" in out


def test_real_process_exit_codes(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    unknown = run_lamson("frobnicate", cwd=tmp_path, env=env)
    assert unknown.returncode == 2
    assert_one_line_error(unknown.stderr.decode(), "unknown command", "frobnicate")

    missing = run_lamson("send", "-to", "a@test.com", cwd=tmp_path, env=env)
    assert missing.returncode == 2
    assert_one_line_error(missing.stderr.decode(), "lamson send", "-sender")

    refused = run_lamson("send", "-sender", "a@test.com", "-to", "b@test.com", "-port", str(free_port()),
                         cwd=tmp_path, env=env)
    assert refused.returncode == 1
    assert_one_line_error(refused.stderr.decode(), "cannot talk SMTP", "refused")

    assert run_lamson(cwd=tmp_path, env=env).returncode == 0  # bare `lamson` prints the help


@pytest.mark.parametrize("argv, words", [
    (["send", "-sender", "a@test.com", "-to", "b@test.com", "-bogus", "1"], ["unrecognized", "-bogus"]),
    (["send", "-sender", "a@test.com", "-to", "b@test.com", "-port", "99999"], ["bad port", "99999"]),
    (["send", "-sender", "a@test.com", "-to", "b@test.com", "-port", "http"], ["bad port", "http"]),
    (["send", "-sender", "-to", "b@test.com"], ["-sender", "expected one argument"]),
    (["send", "-sender", "not an address", "-to", "b@test.com"], ["not an email address"]),
    (["log", "-port", "0"], ["bad port"]),
    (["blast", "-port", "8823"], ["required", "-input"]),
    (["queue"], ["one of the arguments"]),
    (["queue", "-count", "-keys"], ["not allowed with"]),
    (["stop", "-ALL", "run", "-pid", "run/log.pid"], ["not both"]),
    (["gen"], ["project name"]),
    (["sendmail", "-Q", "x"], ["unknown option", "-Q"]),
    (["help", "-for", "nothing"], ["unknown command"]),
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str],
                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, *argv)
    assert code == 2, err
    assert_one_line_error(err, *words)


@pytest.fixture
def queue_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = maildir.ensure(tmp_path / "run" / "queue")
    maildir.write(folder, b"Subject: one\r\n\r\nfirst\r\n", key="1000.A.host")
    maildir.write(folder, b"Subject: two\r\n\r\nsecond\r\n", key="1001.B.host")
    return folder


def test_queue_commands(capsys: pytest.CaptureFixture[str], queue_dir: Path) -> None:
    assert run_main(capsys, "queue", "-count") == (0, "2\n", "")
    assert run_main(capsys, "queue", "-keys") == (0, "1000.A.host\n1001.B.host\n", "")
    code, _out, _ = run_main(capsys, "queue", "-get", "1001.B.host")
    assert code == 0
    code, out, _ = run_main(capsys, "queue", "-remove", "1001.B.host")
    assert code == 0 and "removed" in out
    code, _, err = run_main(capsys, "queue", "-get", "1001.B.host")
    assert code == 1 and "no message" in err
    code, _, _ = run_main(capsys, "queue", "-pop")
    assert code == 0
    assert run_main(capsys, "queue", "--count") == (0, "0\n", "")
    maildir.write(queue_dir, b"Subject: x\r\n\r\nx\r\n")
    code, out, _ = run_main(capsys, "queue", "-clear")
    assert code == 0 and "removed 1" in out
    code, _, err = run_main(capsys, "queue", "-name", "nowhere", "-count")
    assert code == 1 and "no Maildir" in err


def test_queue_get_prints_the_exact_bytes(capfdbinary: pytest.CaptureFixture[bytes], queue_dir: Path) -> None:
    assert main(["queue", "-get", "1000.A.host"]) == 0
    assert capfdbinary.readouterr().out == b"Subject: one\r\n\r\nfirst\r\n"


@pytest.mark.parametrize("key", [
    "../../etc/passwd", "/etc/passwd", "new/1000.A.host", ".hidden", "..", "a\x00b", "x/../../y", "",
])
def test_queue_refuses_keys_that_leave_the_maildir(capsys: pytest.CaptureFixture[str], queue_dir: Path,
                                                   key: str) -> None:
    for action in ("-get", "-remove"):
        code, out, err = run_main(capsys, "queue", action, key)
        assert code == 2, (key, err)
        assert_one_line_error(err, "lamson queue")
        assert out == ""
    assert sorted(os.listdir(queue_dir / "new")) == ["1000.A.host", "1001.B.host"]


def test_queue_refuses_a_symlink_out(capsys: pytest.CaptureFixture[str], queue_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("do not print me")
    (queue_dir / "new" / "1002.C.host").symlink_to(secret)
    code, out, err = run_main(capsys, "queue", "-get", "1002.C.host")
    assert code == 2 and "do not print me" not in out
    assert_one_line_error(err, "lamson queue")
    code, _, _ = run_main(capsys, "queue", "-remove", "1002.C.host")
    assert code == 2 and secret.exists()


def test_queue_key_traversal_from_a_real_process(queue_dir: Path, tmp_path: Path) -> None:
    result = run_lamson("queue", "-get", "../../../../etc/passwd", cwd=tmp_path, env=base_env(tmp_path))
    assert result.returncode == 2 and result.stdout == b""
    assert_one_line_error(result.stderr.decode(), "not a Maildir key")


def test_sendmail_flags_from_mail_clients_are_understood() -> None:
    assert prepare_sendmail(["-oem", "-oi", "-B8BITMIME", "-f", "me@x.org", "--", "a@y.org", "-odd@y.org"]) == \
        ["-f", "me@x.org", "--", "a@y.org", "-odd@y.org"]
    assert prepare_sendmail(["-port", "8823", "-host", "127.0.0.1", "-t", "-i", "-fme@x.org"]) == \
        ["-port", "8823", "-host", "127.0.0.1", "-t", "-f", "me@x.org", "--"]
    assert prepare_sendmail(["--port=25", "-F", "Full Name", "b@y.org"]) == ["--port=25", "--", "b@y.org"]


def test_start_outside_a_project_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, "start")
    assert code == 1
    assert_one_line_error(err, "deploy/supervisord.conf", "lamson gen")
    code, out, _ = run_main(capsys, "stop")
    assert code == 0 and "not running" in out


def test_recipients_may_be_repeated_or_comma_separated() -> None:
    from lamson.cli.mailing import split_addresses

    assert split_addresses(["a@test.com, B <b@test.com>", "c@test.com"]) == ["a@test.com", "b@test.com", "c@test.com"]


def test_sendmail_minus_t_removes_only_the_bcc_header() -> None:
    from lamson.cli.mailing import remove_header

    data = b"To: a@x.org\r\nBcc: secret@x.org,\r\n  other@x.org\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n"
    assert remove_header(data, b"bcc") == b"To: a@x.org\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n"
