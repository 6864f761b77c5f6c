"""A parked message goes back through the pipeline with `lamson queue -requeue KEY`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from lamson import queues, rqcompat
from lamson.names import Names
from lamson.queue import Queue as Maildir
from lamson.requeue import NotParked, untag
from lamson.spool import MaildirSpool
from tests.support import BIN, make_project, run_lamson

MESSAGE = b"From: a@example.org\r\nTo: help@test.com\r\nSubject: crash me\r\n\r\nbody\r\n"

HANDLER = '''
from pathlib import Path
from lamson.router import route

@route("(address)@(host)", address=".+")
def START(message, address=None, host=None):
    if Path("broken").exists():
        raise RuntimeError("handler bug")
    Path("handled").write_text(message.From + " " + message.To)
'''


def test_untag_reads_both_kinds_of_parking() -> None:
    routed = b"X-Lamson-Envelope-From: a@example.org\r\nX-Lamson-Envelope-To: help@test.com\r\nX-Lamson-Reason: boom\r\n"
    envelope, data = untag(routed + MESSAGE)
    assert (envelope.mail_from, envelope.rcpt_tos, data) == ("a@example.org", ("help@test.com",), MESSAGE)
    record = {"v": 1, "mail_from": "", "rcpt_tos": ["x@test.com", "y@test.com"], "queue": "posts"}
    quarantined = b"X-Lamson-Quarantined: too deep\r\nX-Lamson-Envelope: " + json.dumps(record).encode() + b"\r\n"
    envelope, data = untag(quarantined + MESSAGE)
    assert (envelope.mail_from, envelope.rcpt_tos, envelope.queue, data) == ("", ("x@test.com", "y@test.com"), "posts", MESSAGE)
    with pytest.raises(NotParked):
        untag(MESSAGE)


def test_crashed_message_is_parked_then_requeued_and_handled(tmp_path: Path, redis_url: str,
                                                            redis_conn: redis.Redis) -> None:
    project = make_project(tmp_path / "app", redis_url, handlers=["app.handlers.crashy"])
    root = project["root"]
    (root / "app" / "handlers" / "crashy.py").write_text(HANDLER)
    (root / "broken").touch()
    spool = MaildirSpool(root / "run" / "spool")
    from lamson.envelope import Envelope

    queues.wake_router(redis_conn, Names(), "incoming",
                       [spool.put(Envelope("a@example.org", ("help@test.com",)), MESSAGE)])
    worker = [str(BIN / "lamson"), "worker", "-root", str(root), "-burst"]
    import subprocess

    subprocess.run(worker, cwd=root, check=True, timeout=120, capture_output=True)
    parked = Maildir(root / "run" / "undeliverable")
    (key,) = parked.keys()
    assert spool.keys() == [] and not (root / "handled").exists()

    (root / "broken").unlink()  # the handler is fixed
    result = run_lamson("queue", "-name", "run/undeliverable", "-requeue", key, "-root", str(root), cwd=root)
    assert result.returncode == 0, result.stderr
    assert parked.count() == 0 and len(spool.keys()) == 1
    assert rqcompat.length(redis_conn, Names().incoming) == 1

    subprocess.run(worker, cwd=root, check=True, timeout=120, capture_output=True)
    assert (root / "handled").read_text() == "a@example.org help@test.com"
    assert spool.keys() == []


def test_requeue_refuses_what_lamson_did_not_park(tmp_path: Path, redis_url: str) -> None:
    project = make_project(tmp_path / "app", redis_url)
    key = Maildir(project["root"] / "run" / "queue").push(MESSAGE)
    result = run_lamson("queue", "-requeue", key, "-root", str(project["root"]), cwd=project["root"])
    assert result.returncode == 1 and b"not a message Lamson parked" in result.stderr
    assert result.stderr.count(b"\n") == 1


def test_reasons_and_requeue_all_from_where_the_deploy_files_are(tmp_path: Path, redis_url: str,
                                                                 redis_conn: redis.Redis) -> None:
    import subprocess

    from lamson.envelope import Envelope

    # The demo's layout: deploy/ and run/ at the top, the application in a folder deploy names.
    top = tmp_path / "site"
    project = make_project(top / "app", redis_url, handlers=["app.handlers.crashy"])
    root = project["root"]
    (root / "app" / "handlers" / "crashy.py").write_text(HANDLER)
    (top / "deploy").mkdir()
    (top / "deploy" / "supervisord.conf").write_text(
        '[supervisord]\nenvironment=LAMSON_ROOT="%(here)s/../app",PYTHONUNBUFFERED="1"\n')
    settings = root / "config" / "settings.py"
    settings.write_text(settings.read_text().replace(repr(str(root / "run" / "spool")), '"run/spool"'))
    (top / "broken").touch()
    spool = MaildirSpool(top / "run" / "spool")
    for i in range(3):
        key = spool.put(Envelope(f"a{i}@example.org", ("help@test.com",)), MESSAGE)
        queues.wake_router(redis_conn, Names(), "incoming", [key])
    worker = [str(BIN / "lamson"), "worker", "-root", str(root), "-burst"]
    subprocess.run(worker, cwd=top, check=True, timeout=120, capture_output=True)
    assert len(Maildir(top / "run" / "undeliverable").keys()) == 3

    shown = run_lamson("queue", "-name", "run/undeliverable", "-keys", "-reasons", cwd=top)
    lines = shown.stdout.decode().splitlines()
    assert shown.returncode == 0 and len(lines) == 3
    assert all("RuntimeError: handler bug" in line for line in lines)

    (top / "broken").unlink()  # fixed; no -root: the deploy file says where the application is
    result = run_lamson("queue", "-name", "run/undeliverable", "-requeue", "-all", cwd=top)
    assert result.returncode == 0, result.stderr
    said = result.stdout.decode().splitlines()
    assert len(said) == 3 and all("in the incoming spool" in s and "handler bug" in s for s in said)
    assert Maildir(top / "run" / "undeliverable").count() == 0
    subprocess.run(worker, cwd=top, check=True, timeout=120, capture_output=True)
    assert spool.keys() == []
