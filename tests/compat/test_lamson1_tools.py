"""Lamson 1.x's tools as a 1.x application uses them: commands, ``@spam_filter``, QueueReceiver, test relay.

Written from 1.x's documented behaviour (issue 22): each command runs as a real
``lamson`` process in a project made by ``lamson gen``.
"""

from __future__ import annotations

import logging
import mailbox
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lamson import maildir, spam
from lamson.mail import MailRequest
from lamson.queue import Queue
from tests.cli.conftest import base_env
from tests.router.test_workers import worker_args, write_app
from tests.support import run_lamson


def lamson(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_lamson(*args, cwd=cwd, env=base_env(cwd))


@pytest.fixture
def app1(tmp_path: Path) -> Path:
    made = lamson(tmp_path, "gen", "-project", "app1")
    assert made.returncode == 0, made.stderr.decode()
    return tmp_path / "app1"


# ----------------------------------------------------------------------------- commands


def test_status_pid_of_a_server_not_started_says_so_and_succeeds(app1: Path) -> None:
    result = lamson(app1, "status", "-pid", "run/log.pid")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == "not running (no pid file run/log.pid)\n"
    (app1 / "run" / "log.pid").write_text("\n")
    empty = lamson(app1, "status", "-pid", "run/log.pid")
    assert empty.returncode == 0 and empty.stdout.decode().startswith("not running (no pid in run/log.pid")


def test_routes_of_handler_modules_given_as_arguments(app1: Path) -> None:
    result = lamson(app1, "routes", "lamson.handlers.log", "lamson.handlers.queue")
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "lamson.handlers.log.START" in out and "lamson.handlers.queue.START" in out
    assert "app.handlers.sample" not in out  # the named modules only: the boot did not run
    tested = lamson(app1, "routes", "lamson.handlers.queue", "-test", "someone@example.com")
    assert tested.returncode == 0, tested.stderr.decode()
    assert "lamson.handlers.queue.START: runs always" in tested.stdout.decode()
    assert "lamson.handlers.log.START" not in tested.stdout.decode()


def test_cleanse_of_a_queue_not_made_yet_or_empty(app1: Path) -> None:
    assert not (app1 / "run" / "queue").exists()
    missing = lamson(app1, "cleanse", "-input", "run/queue", "-output", "run/cleansed")
    assert missing.returncode == 0, missing.stderr.decode()
    assert missing.stdout.decode().startswith("cleansed 0, failed 0: run/queue does not exist")
    assert (app1 / "run" / "cleansed" / "new").is_dir()
    assert not (app1 / "run" / "queue").exists()  # reading made nothing

    maildir.ensure(app1 / "run" / "queue")
    empty = lamson(app1, "cleanse", "-input", "run/queue", "-output", "run/cleansed")
    assert empty.returncode == 0, empty.stderr.decode()
    assert empty.stdout.decode().startswith("cleansed 0, failed 0: run/queue -> ")
    assert list((app1 / "run" / "cleansed" / "new").iterdir()) == []


# ----------------------------------------------------------------------------- @spam_filter


@pytest.fixture
def memory_spam() -> Iterator[None]:
    """Token counts in memory, as config/testing.py sets them; put back as it was afterwards."""
    was = spam.memory_store_in_use()
    spam.use_memory_store()
    yield
    spam.use_memory_store(was)


def test_spam_filter_imports_before_its_files_exist_and_lets_mail_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_spam: None, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)  # a fresh project: no run/spamdb, no run/spamrc, no run/spam
    ran: list[str] = []

    @spam.spam_filter("run/spamdb", "run/spamrc", "run/spam", next_state="SPAMMING")
    def START(message: MailRequest) -> str:  # noqa: N802 - 1.x's state names
        ran.append(str(message["subject"]))
        return "POSTING"

    assert not (tmp_path / "run").exists()  # decorating read and created nothing
    hello = MailRequest("127.0.0.1", "a@example.org", "list@test.com",
                        b"From: a@example.org\r\nTo: list@test.com\r\nSubject: hello\r\n\r\nHi all.\r\n")
    with caplog.at_level(logging.WARNING, logger="lamson.spam.decorator"):
        assert START(hello) == "POSTING" and ran == ["hello"]
        assert START(hello) == "POSTING"
    warnings = [r.getMessage() for r in caplog.records if "run/spamrc does not exist yet" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per message
    assert str(hello["X-Spam-Classification"]).startswith("unsure")
    assert not (tmp_path / "run" / "spam").exists()

    # Once the config file exists it is read (and a wrong one is an error then, as always).
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "spamrc").write_text("[classifier]\nham_cutoff = 0.6\nspam_cutoff = 0.95\n")
    assert START(hello) == "POSTING"
    assert START.spam_filter.config.ham_cutoff == 0.6  # type: ignore[attr-defined]
    assert str(hello["X-Spam-Classification"]).startswith("ham")  # 0.5 is ham under the new cutoff


# ----------------------------------------------------------------------------- QueueReceiver

QUEUE_HANDLER = '''\
import redis

from config import settings
from lamson.routing import route

conn = redis.Redis.from_url(settings.redis_url)


@route("post-(name)@(host)", name="[a-z]+")
def START(message, name=None, host=None):
    conn.rpush("posted", message["subject"])
'''

#: 1.x's config/queue.py, as the guide wrote it (without its logging.conf line).
QUEUE_BOOT = '''\
from config import settings
from lamson.routing import Router
from lamson.server import QueueReceiver

settings.receiver = QueueReceiver(settings.queue_config['queue'], settings.queue_config['sleep'])
Router.defaults(**settings.router_defaults)
Router.load(settings.queue_handlers)
'''


def fill_queue(root: Path) -> Queue:
    """run/posts as 1.x programs leave it: two pushed messages, one a mail reader has read (cur/, ``:2,S``)."""
    posts = Queue(root / "run" / "posts")
    posts.push(b"From: a@example.org\r\nTo: post-one@test.com\r\nSubject: one\r\n\r\nbody\r\n")
    posts.push(b"From: a@example.org\r\nTo: post-two@test.com\r\nSubject: two\r\n\r\nbody\r\n")
    box = mailbox.Maildir(root / "run" / "posts", create=False)
    seen = mailbox.MaildirMessage(b"From: b@example.org\r\nTo: post-three@test.com\r\nSubject: three\r\n\r\nread\r\n")
    seen.set_subdir("cur")
    seen.add_flag("S")
    box.add(seen)
    assert posts.count() == 3
    return posts


@pytest.mark.parametrize("how", ["lamson worker -burst", "start(one_shot=True)"])
def test_a_queue_receiver_consumes_what_its_queue_holds(tmp_path: Path, redis_url: str, redis_conn: redis.Redis,
                                                       how: str) -> None:
    write_app(tmp_path, redis_url, ["app.handlers.posts"],
              {"app/handlers/posts.py": QUEUE_HANDLER, "config/queue.py": QUEUE_BOOT},
              extra='queue_config = {"queue": "run/posts", "sleep": 30}\nqueue_handlers = ["app.handlers.posts"]\n')
    posts = fill_queue(tmp_path)
    if how == "lamson worker -burst":
        argv = worker_args(tmp_path, "-boot", "config.queue", "-burst")
    else:  # a 1.x script: boot config/queue.py, then run its receiver once over the folder
        argv = [sys.executable, "-c", "import config.queue\nfrom config import settings\n"
                "settings.receiver.start(one_shot=True)\n"]
    done = subprocess.run(argv, cwd=tmp_path, env={**base_env(tmp_path), "PYTHONPATH": str(tmp_path)},
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert posts.count() == 0  # 1.x: the queue is empty afterwards (30 s sleep: no sweep did it)
    assert sorted(redis_conn.lrange("posted", 0, -1)) == [b"one", b"three", b"two"]
