"""Stopping the demo deployment is quick, every way an operator stops it (under 15 s each).

The programs have done work first (a message routed and answered) and then
sat idle for a few seconds, the state in which redis-py 8.2 made each rq
worker wait 60 s+ in its command channel's teardown before supervisord
SIGKILLed it (lamson.rqcompat.Worker).
"""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import time
from pathlib import Path

from lamson import maildir
from lamson.process import alive
from tests.e2e.conftest import Pipeline, deploy_tree
from tests.support import (
    BIN,
    Supervised,
    run_lamson,
    spawn,
    stop_process,
    wait_all_running,
    wait_for,
    wait_port,
)

#: The issue's bound for `lamson stop`, `lamson stop -ALL` and SIGTERM to `supervisord -n` on the demo.
STOP_BOUND = 15.0


def converse(root: Path, port: int, n: int) -> None:
    """One message through the pipeline and its reply in run/queue, then a few idle seconds."""
    queue = root / "run" / "queue"
    before = len(maildir.keys(queue))
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.sendmail("stopper@example.org", ["hello@test.com"],
                      f"From: stopper@example.org\r\nTo: hello@test.com\r\nSubject: before stop {n}\r\n\r\nHi.\r\n")
    wait_for(lambda: len(maildir.keys(queue)) > before, 90, 0.1, "the reply")
    time.sleep(3)  # idle: workers blocked waiting for jobs, rq's command threads in their long reads


def timed(what: str, action: subprocess.CompletedProcess[bytes] | None, began: float) -> float:
    took = time.monotonic() - began
    print(f"{what}: {took:.1f} s")
    if action is not None:
        assert action.returncode == 0, action.stdout.decode() + action.stderr.decode()
    assert took < STOP_BOUND, f"{what} took {took:.1f} s"
    return took


def test_lamson_stop_and_stop_all_are_quick(pipeline: Pipeline) -> None:
    root, env = pipeline.root, pipeline.env
    converse(root, pipeline.ports["receiver"], 1)
    children = pipeline.pids()
    began = time.monotonic()
    stopped = run_lamson("stop", cwd=root, env=env, timeout=120)
    timed("lamson stop", stopped, began)
    assert not any(alive(pid) for pid in children)

    started = run_lamson("start", cwd=root, env=env, timeout=120)
    assert started.returncode == 0, started.stdout.decode() + started.stderr.decode()
    wait_all_running(lambda: pipeline.ctl("status"), 8, root / "logs")
    converse(root, pipeline.ports["receiver"], 2)
    children = pipeline.pids()
    began = time.monotonic()
    stopped = run_lamson("stop", "-ALL", "run", cwd=root, env=env, timeout=120)
    timed("lamson stop -ALL run", stopped, began)
    assert not any(alive(pid) for pid in children)


def test_sigterm_to_supervisord_in_the_foreground_is_quick(tmp_path: Path) -> None:
    root, env, ports = deploy_tree(tmp_path)
    sup = Supervised(root, env)
    proc = spawn([str(BIN / "supervisord"), "-n", "-c", str(sup.conf)], cwd=root, env=env,
                 log=tmp_path / "supervisord.out")
    children: list[int] = []
    try:
        wait_port(ports["receiver"], timeout=60)
        wait_all_running(lambda: sup.ctl("status"), 8, root / "logs")
        children = sup.pids()
        converse(root, ports["receiver"], 1)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        timed("SIGTERM to supervisord -n", None, began)
        assert proc.returncode == 0
        assert not any(alive(pid) for pid in children)
    finally:
        stop_process(proc)
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
