"""The spool's tmp/: a partial file whose writer died is removed at the next sweep, a live writer's is kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lamson import maildir
from lamson.spool import MaildirSpool


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    return proc.pid


def test_partial_file_of_a_dead_writer_goes_at_once(tmp_path: Path) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    host = maildir.new_key().split(".", 2)[2]
    dead = f"1795462958.M1P{dead_pid()}Q7.{host}"
    mine = f"1795462958.M2P{os.getpid()}Q8.{host}"
    other_host = f"1795462958.M3P{dead_pid()}Q9.elsewhere"
    for name in (dead, mine, other_host):
        (spool.path / "tmp" / name).write_bytes(b"half a mess")

    assert spool.cleanup() == 1
    assert sorted(os.listdir(spool.path / "tmp")) == sorted([mine, other_host])


def test_old_partial_files_go_whoever_wrote_them(tmp_path: Path) -> None:
    spool = MaildirSpool(tmp_path / "spool")
    old = spool.path / "tmp" / "1.M1P1Q1.elsewhere"
    old.write_bytes(b"x")
    os.utime(old, (1, 1))
    assert spool.cleanup() == 1
    assert os.listdir(spool.path / "tmp") == []
