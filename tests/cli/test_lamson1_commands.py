"""Lamson 1.x's commands and options: version, cleanse, status -pid, routes with module arguments.

Every command runs as a real ``lamson`` process, in one-dash and two-dash forms.
"""

from __future__ import annotations

import mailbox
import subprocess
from email import message_from_bytes
from email.policy import default as DEFAULT_POLICY
from pathlib import Path

import pytest

import lamson
from lamson import maildir
from lamson.mail import MailRequest
from tests.cli.conftest import base_env, kill_pid
from tests.support import BIN, free_port, run_lamson, spawn, stop_process, wait_port


def lamson_cmd(tmp_path: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[bytes]:
    return run_lamson(*args, cwd=cwd or tmp_path, env=base_env(tmp_path, **env))


def one_line(result: subprocess.CompletedProcess[bytes], *words: str) -> None:
    err = result.stderr.decode()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def test_version(tmp_path: Path) -> None:
    result = lamson_cmd(tmp_path, "version")
    assert result.returncode == 0
    assert result.stdout.decode().startswith(f"Lamson {lamson.__version__} (Python 3.")
    assert b"version" in lamson_cmd(tmp_path, "help").stdout


# ----------------------------------------------------------------------------- cleanse

LATIN1 = (b"From: =?iso-8859-1?q?J=F6rg?= <jorg@example.org>\nTo: a@test.com\n"
          b"Subject: =?iso-8859-1?q?Gr=FC=DFe?=\nContent-Type: text/plain; charset=iso-8859-1\n"
          b"Content-Transfer-Encoding: quoted-printable\n\nSch=F6ne Gr=FC=DFe\n")
MISLABELLED = (b"From: b@example.org\nTo: a@test.com\nSubject: mislabelled\nContent-Type: text/plain; "
               b"charset=us-ascii\n\nd\xe9j\xe0 vu\n")
ATTACHED = (b"From: c@example.org\nTo: a@test.com\nSubject: attached\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: text/plain\n\nsee attached\n"
            b"--XX\nContent-Type: application/octet-stream; name=x.bin\nContent-ID: <part1@example.org>\n"
            b"Content-Disposition: attachment; filename=x.bin\nContent-Transfer-Encoding: base64\n\n"
            b"AAECA/8=\n--XX--\n")


def deep_message(depth: int = 60) -> bytes:
    inner = b"Content-Type: text/plain\r\n\r\nx\r\n"
    for i in range(depth):
        inner = (f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode() + inner
                 + f"\r\n--b{i}--\r\n".encode())
    return b"Subject: deep\r\nMIME-Version: 1.0\r\n" + inner


def cleansed(folder: Path) -> dict[str, bytes]:
    """Output messages by subject (decoded)."""
    found = {}
    for key in maildir.keys(folder, "new"):
        data = (folder / "new" / key).read_bytes()
        found[str(message_from_bytes(data, policy=DEFAULT_POLICY)["subject"])] = data
    return found


def test_cleanse_an_mbox_into_canonical_form(tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "in.mbox")
    for data in (LATIN1, MISLABELLED, ATTACHED):
        box.add(data)
    box.close()
    result = lamson_cmd(tmp_path, "cleanse", "-input", "in.mbox", "-output", "clean")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().startswith("cleansed 3, failed 0: in.mbox -> ")
    out = cleansed(tmp_path / "clean")
    assert set(out) == {"Grüße", "mislabelled", "attached"}
    for data in out.values():
        assert data.isascii() and b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
        assert data.count(b"MIME-Version:") == 1  # the message has it, its parts do not

    greeting = message_from_bytes(out["Grüße"], policy=DEFAULT_POLICY)
    assert greeting.get_content_charset() == "utf-8"
    assert greeting.get_content().strip() == "Schöne Grüße"
    assert str(greeting["from"]) == "Jörg <jorg@example.org>"
    # The mail model's charset fallback reads the mislabelled Latin-1 as what it is.
    assert message_from_bytes(out["mislabelled"], policy=DEFAULT_POLICY).get_content().strip() == "déjà vu"
    attached = MailRequest("t", None, None, out["attached"])
    assert attached.body().strip() == "see attached"
    [attachment] = attached.attachments()
    assert attachment.filename == "x.bin" and attachment.data == b"\x00\x01\x02\x03\xff"
    assert b"Content-ID: <part1@example.org>" in out["attached"]


def test_cleanse_a_maildir_leaves_out_what_the_mail_model_refuses(tmp_path: Path) -> None:
    source = maildir.ensure(tmp_path / "in")
    maildir.write(source, LATIN1)
    maildir.write(source, deep_message())
    result = lamson_cmd(tmp_path, "cleanse", "--input", "in", "--output=clean")
    assert result.returncode == 1
    one_line(result, "message 2: left out", "MIME nesting")
    assert "cleansed 1, failed 1" in result.stdout.decode()
    assert list(cleansed(tmp_path / "clean")) == ["Grüße"]


def test_cleanse_bad_use(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()  # exists, but neither a Maildir nor an mbox
    neither = lamson_cmd(tmp_path, "cleanse", "-input", "plain", "-output", "clean")
    assert neither.returncode == 1
    one_line(neither, "plain is a directory but not a Maildir")
    maildir.ensure(tmp_path / "same")
    same = lamson_cmd(tmp_path, "cleanse", "-input", "same", "-output", "./same/")
    assert same.returncode == 1
    one_line(same, "same Maildir")
    no_output = lamson_cmd(tmp_path, "cleanse", "-input", "same")
    assert no_output.returncode == 2
    one_line(no_output, "-output")


# ----------------------------------------------------------------------------- status -pid


def test_status_of_one_pid_file(tmp_path: Path) -> None:
    port = free_port()
    proc = spawn([str(BIN / "lamson"), "log", "-foreground", "-port", str(port)], cwd=tmp_path,
                 env=base_env(tmp_path))
    try:
        wait_port(port, timeout=20)
        pidfile = tmp_path / "run" / "smtp.pid"
        pidfile.parent.mkdir(exist_ok=True)
        pidfile.write_text(f"{proc.pid}\n")
        for flag in ("-pid", "--pid"):
            running = lamson_cmd(tmp_path, "status", flag, "run/smtp.pid")
            assert running.returncode == 0, running.stdout + running.stderr
            assert running.stdout.decode() == f"running (pid {proc.pid}, run/smtp.pid)\n"
    finally:
        stop_process(proc)
        kill_pid(proc.pid)
    stale = lamson_cmd(tmp_path, "status", "-pid", "run/smtp.pid")
    assert stale.returncode == 0 and b"not running (stale pid file run/smtp.pid" in stale.stdout
    absent = lamson_cmd(tmp_path, "status", "-pid", "run/none.pid")
    assert absent.returncode == 0 and absent.stdout == b"not running (no pid file run/none.pid)\n"


# ----------------------------------------------------------------------------- routes MODULE ...


@pytest.fixture
def project(tmp_path: Path) -> Path:
    result = lamson_cmd(tmp_path, "gen", "-project", "app1")
    assert result.returncode == 0, result.stderr.decode()
    return tmp_path / "app1"


def test_routes_imports_the_modules_it_is_given_instead_of_the_boot(project: Path, tmp_path: Path) -> None:
    boot = project / "config" / "boot.py"
    boot.write_text('raise RuntimeError("config.boot must not run")\n' + boot.read_text())
    booted = lamson_cmd(tmp_path, "routes", cwd=project)
    assert booted.returncode != 0 and b"config.boot must not run" in booted.stderr  # the default boots

    for argv in (["routes", "--", "config.testing"], ["routes", "config.testing", "-test", "hello@test.com"],
                 ["routes", "--test", "hello@test.com", "--", "config.testing"]):
        result = lamson_cmd(tmp_path, *argv, cwd=project)
        assert result.returncode == 0, (argv, result.stderr.decode())
        assert b"Routing ORDER" in result.stdout and b"app.handlers.sample.START" in result.stdout
    assert b"TEST address 'hello@test.com' matches" in result.stdout

    elsewhere = lamson_cmd(tmp_path, "routes", "-path", str(project), "--", "config.testing")
    assert elsewhere.returncode == 0, elsewhere.stderr.decode()
    unknown = lamson_cmd(tmp_path, "routes", "--", "config.nothing", cwd=project)
    assert unknown.returncode == 1
    one_line(unknown, "cannot import 'config.nothing'")
    both = lamson_cmd(tmp_path, "routes", "-boot", "config.testing", "config.testing", cwd=project)
    assert both.returncode == 2
    one_line(both, "not both")
