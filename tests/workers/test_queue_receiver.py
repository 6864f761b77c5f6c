"""The guide's "Deferred Processing To Queues": a QueueReceiver worker on a Maildir queue."""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis

from lamson.queue import Queue, queue_group
from tests.router.test_workers import procs, spool_message, worker_args, write_app  # noqa: F401 - fixture
from tests.support import spawn, wait_for

FRONT = '''\
from lamson.queue import Queue
from lamson.router import route


@route("post-(name)@(host)", name="[a-z]+")
def START(message, name=None, host=None):
    Queue("run/posts").push(message)  # slow work goes to the queue processor
'''

POSTS = '''\
import redis

from config import settings
from lamson.router import route

conn = redis.Redis.from_url(settings.redis_url)


@route("post-(name)@(host)", name="[a-z]+")
def START(message, name=None, host=None):
    conn.rpush("posted", f"{name} {message.From} {message['subject']} {message.Peer}")
'''

QUEUE_BOOT = '''\
from config import settings
from lamson.router import Router
from lamson.server import QueueReceiver

settings.receiver = QueueReceiver(settings.queue_config["queue"], settings.queue_config["sleep"])
Router.defaults(**settings.router_defaults)
Router.load(settings.queue_handlers)
'''


def test_a_queue_receiver_routes_what_handlers_push_at_once_and_what_others_write_by_sweep(
        tmp_path: Path, redis_url: str, redis_conn: redis.Redis, procs: list) -> None:  # noqa: F811
    write_app(tmp_path, redis_url, ["app.handlers.front"], {
        "app/handlers/front.py": FRONT,
        "app/handlers/posts.py": POSTS,
        "config/queue.py": QUEUE_BOOT,
    }, extra='queue_config = {"queue": "run/posts", "sleep": 2}\nqueue_handlers = ["app.handlers.posts"]\n'
             'sweep_interval = 60\nsweep_grace = 60\n')
    procs.append(spawn(worker_args(tmp_path), cwd=tmp_path, log=tmp_path / "worker.log"))
    procs.append(spawn(worker_args(tmp_path, "-boot", "config.queue"), cwd=tmp_path, log=tmp_path / "queue.log"))
    wait_for(lambda: redis_conn.sismember("lamson:queue-receivers", queue_group("run/posts")), 30, 0.1,
             "the queue receiver announced")
    started = time.monotonic()
    spool_message(tmp_path, redis_conn, "Writer@Example.org", "post-hello@test.com", subject="first")
    wait_for(lambda: redis_conn.llen("posted") == 1, 30, 0.05, "the queued message routed")
    assert time.monotonic() - started < 1.9  # woken by the push, not found by the 2 s sweep
    name, sender, subject, peer = redis_conn.lrange("posted", 0, -1)[0].decode().split()
    assert (name, sender, subject) == ("hello", "writer@example.org", "first")
    assert peer.endswith("run/posts")
    # A message written into the folder by something that cannot wake it (a cron job): swept within `sleep`.
    Queue(tmp_path / "run" / "posts").push(
        b"From: cron@example.org\r\nTo: post-nightly@test.com\r\nSubject: batch\r\n\r\nbody\r\n")
    wait_for(lambda: redis_conn.llen("posted") == 2, 30, 0.1, "the swept message routed")
    wait_for(lambda: not os.listdir(tmp_path / "run" / "posts" / "new")
             and not os.listdir(tmp_path / "run" / "posts" / "cur"), 10, 0.1, "the queue emptied")
    assert "serving the Maildir queue run/posts as worker group q-posts" in (tmp_path / "queue.log").read_text()
