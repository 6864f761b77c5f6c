"""Disk full: the spool on a 64 KiB tmpfs. 451, never 250 for what was not stored, no partial file.

This mounts a real tmpfs (so the sandbox or CI must allow ``mount``, e.g.
run as root or in a container with CAP_SYS_ADMIN); if it cannot, the test
fails and says so rather than pretending with a mock.
"""

from __future__ import annotations

import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamson import maildir
from lamson.spool import decode
from tests.receiver.test_receiver import start_receiver
from tests.support import make_project, stop_process

SIZE_KIB = 64


def mount(cmd: list[str]) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.stderr.strip()}): the disk-full test needs a real "
                             "small filesystem; run it where mount is allowed (root, or CAP_SYS_ADMIN)")


@pytest.fixture
def small_spool(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "spool"
    path.mkdir()
    mount(["mount", "-t", "tmpfs", "-o", f"size={SIZE_KIB}k,mode=0700", "tmpfs", str(path)])
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def message(i: int) -> str:
    body = "".join(f"line {n} of message {i}: {'x' * 60}\r\n" for n in range(100))  # about 7.5 KB
    return f"From: sender@example.org\r\nTo: hello@test.com\r\nSubject: fill {i}\r\n\r\n{body}"


def test_full_spool_answers_451_leaves_no_partial_file_and_recovers(tmp_path: Path, small_spool: Path,
                                                                    redis_url: str) -> None:
    project = make_project(tmp_path / "app", redis_url)
    settings = project["root"] / "config" / "settings.py"
    settings.write_text(settings.read_text().replace(repr(str(project["root"] / "run" / "spool")),
                                                     repr(str(small_spool))))
    proc = start_receiver(project)
    codes: dict[int, int] = {}
    try:
        with smtplib.SMTP("127.0.0.1", project["receiver_port"], timeout=30) as smtp:
            for i in range(30):  # 30 x 7.5 KB is far more than 64 KiB
                try:
                    smtp.sendmail("sender@example.org", ["hello@test.com"], message(i))
                    codes[i] = 250
                except smtplib.SMTPDataError as exc:
                    codes[i] = exc.smtp_code
            refused = [i for i, c in codes.items() if c != 250]
            assert refused, codes
            assert {codes[i] for i in refused} <= {451, 452}, codes
            # Every 250 is a complete file in new/; nothing half-written anywhere.
            stored = {decode(k, (small_spool / "new" / k).read_bytes()).data for k in maildir.keys(small_spool)}
            accepted = [i for i, c in codes.items() if c == 250]
            assert len(stored) == len(accepted)
            for i in accepted:
                assert any(data.endswith(message(i).encode()) for data in stored), i
            assert maildir.keys(small_spool, "tmp") == []

            # Space comes back (the workers drained the spool): acceptance resumes in the same session.
            for key in maildir.keys(small_spool):
                (small_spool / "new" / key).unlink()
            smtp.sendmail("sender@example.org", ["hello@test.com"], message(99))
            assert len(maildir.keys(small_spool)) == 1
    finally:
        stop_process(proc)
