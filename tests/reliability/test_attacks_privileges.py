"""The receiver binds as root and then serves as an unprivileged user (``receiver_user``)."""

from __future__ import annotations

import os
import pwd
import shutil
import smtplib
import tempfile
from pathlib import Path

import pytest
import redis

from lamson import rqcompat
from lamson.names import Names
from lamson.receiver import server
from lamson.spool import MaildirSpool
from tests.reliability.test_attacks_receiver import start_receiver
from tests.support import make_project, stop_process, wait_for

MESSAGE = "From: sender@example.org\r\nTo: hello@test.com\r\nSubject: as nobody\r\n\r\nHello.\r\n"


def ids(pid: int) -> dict[str, list[int]]:
    """Real, effective, saved and filesystem uid/gid, and groups, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            fields[key] = [int(v) for v in value.split()]
    return fields


def test_receiver_drops_to_receiver_user_and_still_spools(tmp_path: Path, redis_url: str, redis_conn: redis.Redis) -> None:
    assert os.geteuid() == 0, "this test starts the receiver as root, as an init system would for port 25"
    nobody = pwd.getpwnam("nobody")
    # The spool must be reachable and writable by that user (the project under tmp_path is root's, mode 0700).
    shared = Path(tempfile.mkdtemp(prefix="lamson-priv-"))
    try:
        shared.chmod(0o755)
        spool_dir = shared / "spool"
        spool_dir.mkdir()
        os.chown(spool_dir, nobody.pw_uid, nobody.pw_gid)
        project = make_project(tmp_path / "app", redis_url,
                               extra=f'receiver_user = "nobody"\nspool_dir = {str(spool_dir)!r}\n')
        proc = start_receiver(project["root"], project["receiver_port"])
        try:
            status = ids(proc.pid)  # the lamson process itself (spawn runs it directly)
            assert status["Uid"] == [nobody.pw_uid] * 4, status
            assert status["Gid"] == [nobody.pw_gid] * 4, status
            assert 0 not in status["Groups"], status
            with smtplib.SMTP("127.0.0.1", project["receiver_port"], timeout=30) as smtp:
                for _ in range(3):
                    assert smtp.sendmail("sender@example.org", ["hello@test.com"], MESSAGE) == {}
            spool = MaildirSpool(spool_dir)
            keys = spool.keys()
            assert len(keys) == 3
            for entry in (spool_dir / "new").iterdir():
                assert entry.stat().st_uid == nobody.pw_uid
            assert spool.get(keys[0]).data.endswith(MESSAGE.encode())
            # Redis reached as nobody too: every message gets its wake-up (sent just after the 250).
            incoming = rqcompat.queue(redis_conn, Names().incoming)
            wait_for(lambda: {k for job in incoming.jobs for k in job.args[0]} == set(keys), 10,
                     what="wake-ups for the 3 messages")
        finally:
            stop_process(proc)
        log = (project["root"] / "receiver.log").read_text()
        assert "running as nobody" in log and "Traceback" not in log, log
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_unknown_receiver_user_is_refused() -> None:
    with pytest.raises(server.ReceiverError, match="does not exist"):
        server.drop_privileges("no-such-user-lamson")


def test_receiver_user_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    with pytest.raises(server.ReceiverError, match="started as root"):
        server.drop_privileges("nobody")
