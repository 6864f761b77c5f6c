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
from tests.support import BIN, free_port, run_lamson, spawn, stop_process, wait_port


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


# ----------------------------------------------------------------------------- 1.x's tests against `lamson log`

#: A config/testing.py as 1.x wrote it: the real Relay, pointed at the logging server.
OLD_TESTING = '''\
from config import settings
from lamson.routing import Router
from lamson.server import Relay
from lamson import view
import jinja2

settings.relay = Relay(host=settings.relay_config['host'], port=settings.relay_config['port'], debug=0)
settings.receiver = None

Router.defaults(**settings.router_defaults)
Router.load(['app.handlers.echo'])
Router.RELOAD = True
Router.LOG_EXCEPTIONS = False

view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config['dir'], settings.template_config['module']))
'''

ECHO = '''\
from config.settings import relay
from lamson.mail import MailResponse
from lamson.routing import route


@route("echo@(host)")
def START(message, host=None):
    relay.deliver(MailResponse(To=message['from'], From="echo@%s" % host, Subject="Re: " + message['subject'],
                               Body="You said: " + message.body().strip()))
    return START
'''

#: nose-style, as 1.x's generated tests were: the reply is in run/queue when the routing returns.
ECHO_TESTS = '''\
from lamson.mail import MailRequest
from lamson.routing import Router
from lamson.testing import *

client = RouterConversation("reader@localhost", "echo test")


def test_the_reply_is_in_the_queue_when_deliver_returns():
    client.begin()
    client.deliver("echo@test.com", "reader@localhost", "ping", "first")
    assert queue().count() == 1
    assert delivered("You said: first")


def test_say_expects_the_reply():
    client.begin()
    reply = client.say("echo@test.com", "second", expect="You said: second")
    assert reply['from'] == "echo@test.com"
    assert reply['subject'] == "Re: echo test"
    assert queue().count() == 1
    clear_queue()
    assert queue().count() == 0


def test_routing_it_yourself():
    clear_queue()
    data = "From: reader@localhost\\r\\nTo: echo@test.com\\r\\nSubject: by hand\\r\\n\\r\\nthird\\r\\n"
    Router.deliver(MailRequest("fakepeer", "reader@localhost", "echo@test.com", data))
    reply = delivered("You said: third")
    assert reply['subject'] == "Re: by hand"
    assert queue().count() == 1
'''


@pytest.fixture
def old_style_app(app1: Path, redis_url: str, redis_conn: redis.Redis) -> tuple[Path, dict[str, str]]:
    """app1 with 1.x's config/testing.py and a handler that replies through ``settings.relay``."""
    (app1 / "config" / "testing.py").write_text(OLD_TESTING)
    (app1 / "app" / "handlers" / "echo.py").write_text(ECHO)
    (app1 / "tests" / "echo_tests.py").write_text(ECHO_TESTS)
    # 1.x's generated tests/__init__.py booted the tests; a 1.x project has no conftest.py.
    (app1 / "tests" / "__init__.py").write_text(
        'from lamson import utils\n\nutils.import_settings(True, boot_module="config.testing")\n')
    (app1 / "conftest.py").unlink()
    return app1, base_env(app1, LAMSON_REDIS_URL=redis_url, LAMSON_RELAY_PORT=str(free_port()))


def run_echo_tests(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "pytest"), "-q", "-rA", "-p", "no:cacheprovider", "tests/echo_tests.py"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_old_testing_boot_sends_replies_to_a_running_lamson_log_before_routing_returns(
        old_style_app: tuple[Path, dict[str, str]]) -> None:
    root, env = old_style_app
    port = int(env["LAMSON_RELAY_PORT"])
    log = spawn([str(BIN / "lamson"), "log", "-foreground", "-host", "127.0.0.1", "-port", str(port)],
                cwd=root, env=env, log=root / "logs" / "log.out")
    try:
        wait_port(port, timeout=30)
        done = run_echo_tests(root, env)
    finally:
        stop_process(log)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "3 passed" in done.stdout
    # Nothing went the production way (outbox and relay worker): the test process sent it itself.
    outbox = root / "run" / "outbox" / "new"
    assert not outbox.is_dir() or list(outbox.iterdir()) == []


def test_old_testing_boot_without_lamson_log_fails_saying_what_to_start(
        old_style_app: tuple[Path, dict[str, str]]) -> None:
    root, env = old_style_app
    done = run_echo_tests(root, env)
    assert done.returncode == 1
    assert f"is `lamson log -port {env['LAMSON_RELAY_PORT']}` running?" in done.stdout


def test_the_same_tests_pass_under_the_projects_own_testing_boot(app1: Path) -> None:
    """The generated config/testing.py (a CapturingRelay, no server): the 1.x-style tests pass unchanged."""
    settings = app1 / "config" / "settings.py"
    settings.write_text(settings.read_text().replace('handlers = ["app.handlers.sample"]',
                                                     'handlers = ["app.handlers.echo"]'))
    (app1 / "app" / "handlers" / "echo.py").write_text(ECHO)
    (app1 / "tests" / "echo_tests.py").write_text(ECHO_TESTS)
    done = run_echo_tests(app1, base_env(app1, LAMSON_RELAY_PORT=str(free_port())))
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "3 passed" in done.stdout
