"""End to end: supervisord with the real config, SMTP in, replies in the logging server's Maildir."""

from __future__ import annotations

import smtplib
import subprocess
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes
from email.policy import default
from pathlib import Path

from lamson import maildir
from lamson.process import alive
from tests.e2e.conftest import Pipeline
from tests.support import BIN, wait_for


def send(port: int, client: int, count: int) -> list[str]:
    """One SMTP session sending ``count`` messages; returns the reply codes' texts."""
    replies = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        for i in range(count):
            msg = (f"From: client{client}@example.org\r\nTo: hello@test.com\r\n"
                   f"Subject: message {client}-{i}\r\nMessage-ID: <{client}.{i}@example.org>\r\n\r\nHello {i}.\r\n")
            smtp.sendmail(f"client{client}@example.org", ["hello@test.com"], msg)
            replies.append(f"{client}-{i}")
    return replies


def test_fifty_messages_five_clients_fifty_replies(pipeline: Pipeline) -> None:
    with ThreadPoolExecutor(5) as pool:
        sent = [r for rs in pool.map(lambda c: send(pipeline.ports["receiver"], c, 10), range(5)) for r in rs]
    assert len(sent) == 50

    queue = pipeline.root / "run" / "queue"
    wait_for(lambda: len(maildir.keys(queue)) >= 50, 120, 0.2, "50 replies in run/queue")
    replies = [message_from_bytes((queue / "new" / k).read_bytes(), policy=default) for k in maildir.keys(queue)]
    assert len(replies) == 50
    assert sorted(str(r["Subject"]) for r in replies) == sorted(f"Re: message {s}" for s in sent)
    for reply in replies:
        assert str(reply["From"]) == "hello@test.com"
        assert str(reply["To"]).startswith("client")
        assert "rendered from app/templates/reply.txt" in reply.get_content()
    # Everything routed: the spool is empty, nothing failed.
    assert maildir.keys(pipeline.root / "run" / "spool") == []

    info = subprocess.run([str(BIN / "rq"), "info", "--url", pipeline.redis_url], capture_output=True, text=True,
                          timeout=60, env=pipeline.env)
    assert info.returncode == 0, info.stderr
    for expected in ("lamson-incoming", "lamson-outgoing", "lamson.router.", "lamson.relay."):
        assert expected in info.stdout
    assert "0 failed" in info.stdout.splitlines()[0]

    # The workers yield the CPU to the receiver (worker_nice, 5 by default).
    def nice(program: str) -> int:
        pid = int(pipeline.ctl("pid", program).strip())
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])

    assert nice("receiver") == 0
    assert nice("router:router_00") == nice("router:router_01") == nice("relay") == 5


def test_shutdown_leaves_no_process(pipeline: Pipeline) -> None:
    children = pipeline.pids()
    assert len(children) == 8  # redis, receiver, 2 routers, relay, metrics, log, web
    sup = pipeline.supervisord_pid()
    pipeline.ctl("shutdown")
    wait_for(lambda: not alive(sup), 90, 0.2, "supervisord to exit")
    wait_for(lambda: not any(alive(pid) for pid in children), 30, 0.2, "every program to exit")
