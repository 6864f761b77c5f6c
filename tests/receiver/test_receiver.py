"""The receiver process over real SMTP: durable acceptance, limits, failures."""

from __future__ import annotations

import shutil
import smtplib
import socket
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from lamson import queues, rqcompat
from lamson.names import Names
from lamson.order import Lines
from lamson.spool import MaildirSpool, RedisSpool
from tests.support import BIN, free_port, make_project, spawn, stop_process, wait_for, wait_port

MESSAGE = "From: sender@example.org\r\nTo: hello@test.com\r\nSubject: test\r\n\r\nHello.\r\n"


def start_receiver(project: dict, name: str = "receiver.log") -> object:
    root = project["root"]
    proc = spawn([str(BIN / "lamson"), "receiver", "-root", str(root)], cwd=root, log=root / name)
    try:
        wait_port(project["receiver_port"], timeout=20)
    except AssertionError:
        stop_process(proc)
        raise AssertionError((root / name).read_text()) from None
    return proc


@pytest.fixture
def receiver(tmp_path: Path, redis_url: str, redis_conn: redis.Redis) -> Iterator[dict]:
    project = make_project(tmp_path / "app", redis_url, extra="max_message_size = 4096\nmax_recipients = 5")
    proc = start_receiver(project)
    try:
        yield {**project, "proc": proc, "spool": MaildirSpool(project["root"] / "run" / "spool")}
    finally:
        stop_process(proc)


def test_one_message_many_recipients_one_spool_entry(receiver: dict, redis_conn: redis.Redis) -> None:
    rcpts = ["a@test.com", "b@test.com", "c@test.com"]
    with smtplib.SMTP("127.0.0.1", receiver["receiver_port"]) as smtp:
        refused = smtp.sendmail("sender@example.org", rcpts, MESSAGE)
    assert refused == {}
    keys = receiver["spool"].keys()
    assert len(keys) == 1
    spooled = receiver["spool"].get(keys[0])
    assert spooled.envelope.rcpt_tos == tuple(rcpts)
    assert spooled.envelope.mail_from == "sender@example.org"
    assert spooled.envelope.peer.startswith("127.0.0.1:")
    assert spooled.data.startswith(b"Received: from ") and spooled.data.endswith(MESSAGE.encode())
    # ...and its wake-up (sent just after the 250) waits in lamson-incoming, carrying the key and its
    # sender, and the message is in its sender's line.
    incoming = rqcompat.queue(redis_conn, Names().incoming)
    wait_for(lambda: incoming.job_ids, 10, what="the wake-up")
    (job,) = incoming.jobs
    assert job.func_name == queues.ROUTE_JOB and job.args == [[keys[0]], "incoming", ["sender@example.org"]]
    assert Lines(redis_conn, Names()).head("sender@example.org") == keys[0]


def test_too_many_recipients_get_452(receiver: dict) -> None:
    with smtplib.SMTP("127.0.0.1", receiver["receiver_port"]) as smtp:
        smtp.ehlo()
        smtp.mail("sender@example.org")
        codes = [smtp.rcpt(f"r{i}@test.com")[0] for i in range(7)]
    assert codes == [250] * 5 + [452, 452]


def test_oversized_message_is_refused_with_552_and_not_spooled(receiver: dict) -> None:
    big = MESSAGE + ("x" * 70 + "\r\n") * 120
    # Declared with SIZE at MAIL FROM (smtplib does this when the server offers SIZE).
    with smtplib.SMTP("127.0.0.1", receiver["receiver_port"]) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:
            smtp.sendmail("sender@example.org", ["hello@test.com"], big)
    assert declared.value.smtp_code == 552
    # Not declared: refused at the end of DATA.
    with smtplib.SMTP("127.0.0.1", receiver["receiver_port"]) as smtp:
        smtp.ehlo()
        smtp.mail("sender@example.org")
        smtp.rcpt("hello@test.com")
        code, _ = smtp.data(big.encode())
    assert code == 552
    assert receiver["spool"].keys() == []


def test_unwritable_spool_answers_451_and_leaves_nothing(receiver: dict) -> None:
    spool_dir = receiver["root"] / "run" / "spool"
    shutil.rmtree(spool_dir / "tmp")
    (spool_dir / "tmp").write_text("not a directory")  # every write now fails (ENOTDIR)
    with smtplib.SMTP("127.0.0.1", receiver["receiver_port"]) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail("sender@example.org", ["hello@test.com"], MESSAGE)
    assert refused.value.smtp_code == 451
    assert list((spool_dir / "new").iterdir()) == []
    # When the disk is fine again, so is acceptance.
    (spool_dir / "tmp").unlink()
    (spool_dir / "tmp").mkdir()
    with smtplib.SMTP("127.0.0.1", receiver["receiver_port"]) as smtp:
        assert smtp.sendmail("sender@example.org", ["hello@test.com"], MESSAGE) == {}
    assert len(receiver["spool"].keys()) == 1


def test_many_concurrent_sessions(receiver: dict, redis_conn: redis.Redis) -> None:
    def session(n: int) -> int:
        with smtplib.SMTP("127.0.0.1", receiver["receiver_port"], timeout=60) as smtp:
            for i in range(10):
                smtp.sendmail("sender@example.org", ["hello@test.com"], MESSAGE.replace("test", f"test {n}.{i}"))
        return 10

    # 15 at once: under the per-client limit of 20 (max_connections_per_ip) even while the fixture's own
    # readiness probe is still counted (a loaded machine saw 421 with 20 at once).
    with ThreadPoolExecutor(15) as pool:
        assert sum(pool.map(session, range(20))) == 200
    keys = receiver["spool"].keys()
    assert len(keys) == 200
    # Every message is carried by a wake-up; what arrived together shares one (a batch).
    incoming = rqcompat.queue(redis_conn, Names().incoming)

    def carried() -> set[str]:
        return {k for job in incoming.jobs for k in job.args[0]}

    wait_for(lambda: carried() == set(keys), 10, what="a wake-up for every message")
    assert 1 <= len(incoming) < 200
    subjects = {receiver["spool"].get(k).data.split(b"Subject: ")[1].split(b"\r\n")[0] for k in keys}
    assert len(subjects) == 200


def test_maildir_spool_accepts_while_redis_is_down(tmp_path: Path, redis_url: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    project = make_project(tmp_path / "app", dead)
    proc = start_receiver(project)
    try:
        with smtplib.SMTP("127.0.0.1", project["receiver_port"]) as smtp:
            for _ in range(3):
                assert smtp.sendmail("sender@example.org", ["hello@test.com"], MESSAGE) == {}
    finally:
        stop_process(proc)
    # Durable in the spool, waiting for the sweeper once Redis is back.
    assert len(MaildirSpool(project["root"] / "run" / "spool").keys()) == 3


def test_redis_spool_stores_in_redis(tmp_path: Path, redis_url: str, redis_conn: redis.Redis) -> None:
    project = make_project(tmp_path / "app", redis_url, spool="redis")
    proc = start_receiver(project)
    try:
        with smtplib.SMTP("127.0.0.1", project["receiver_port"]) as smtp:
            assert smtp.sendmail("sender@example.org", ["hello@test.com"], MESSAGE) == {}
    finally:
        stop_process(proc)
    spool = RedisSpool(redis_conn, Names())
    (key,) = spool.keys()
    assert spool.get(key).data.endswith(MESSAGE.encode())
    assert not (project["root"] / "run" / "spool" / "new").exists() or not any((project["root"] / "run" / "spool" / "new").iterdir())


def test_redis_spool_refuses_to_start_without_redis(tmp_path: Path) -> None:
    project = make_project(tmp_path / "app", f"redis://127.0.0.1:{free_port()}/0", spool="redis")
    log = project["root"] / "receiver.log"
    proc = spawn([str(BIN / "lamson"), "receiver", "-root", str(project["root"])], cwd=project["root"], log=log)
    try:
        assert proc.wait(30) != 0
    finally:
        stop_process(proc)
    # Nobody listens: a client gets no 250 from a receiver that could not keep the mail.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", project["receiver_port"]), timeout=1).close()
    assert "refusing to start" in log.read_text()


def test_receiver_stops_on_sigterm(receiver: dict) -> None:
    proc = receiver["proc"]
    proc.terminate()
    assert proc.wait(30) == 0 or proc.returncode in (-15, 0), sys.exc_info()
