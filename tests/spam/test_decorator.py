"""@spam_filter under @route, in a real Router: spam to the Maildir queue, state kept or moved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lamson import context
from lamson.context import Context
from lamson.names import Names
from lamson.queue import Queue
from lamson.router import RouterClass
from lamson.router.decorators import spec_of
from lamson.spam import CLASSIFICATION_HEADER, Filter, use_memory_store
from lamson.testing import reset_router, router_snapshot
from tests.spam.corpus import NEW_HAM, NEW_SPAM
from tests.spam.handlers import spamapp

APP = "tests.spam.handlers.spamapp"
SENDER = "winner@prizes.example.biz"


@pytest.fixture
def router(project_dir: Path) -> Iterator[RouterClass]:
    with router_snapshot():
        spamapp.CALLS.clear()
        spamapp.HEADERS.clear()
        loaded = reset_router()
        loaded.defaults(host="test\\.com", address="[a-z]+")
        loaded.load([APP])
        yield loaded


@pytest.fixture
def worker_context(redis_conn: redis.Redis) -> Iterator[Context]:
    """What a router worker installs: the app's Redis and namespace (the filter's store follows it)."""
    installed = Context(settings=None, conn=redis_conn, names=Names("spamapp"))
    previous = context.install(installed)
    yield installed
    context.install(previous)


def request(raw: bytes, to: str = "list@test.com"):
    from lamson.mail import MailRequest

    return MailRequest("127.0.0.1", SENDER, to, raw)


def train(spam: Filter, training: tuple[list[bytes], list[bytes]]) -> None:
    for message in training[0]:
        spam.train_ham(message)
    for message in training[1]:
        spam.train_spam(message)


def test_wrapper_keeps_name_module_and_route(router: RouterClass) -> None:
    assert spamapp.START.__name__ == "START" and spamapp.START.__module__ == APP
    assert spec_of(spamapp.START).pattern == "(address)@(host)"
    assert spec_of(spamapp.POSTING).pattern == "(address)@(host)"  # route_like saw the wrapper's route
    assert spec_of(spamapp.LOG).stateless
    tables = [[f.__name__ for f in funcs] for funcs in router.TABLE.values()]
    assert ["START", "POSTING"] in tables and ["LOG"] in tables


def test_untrained_filter_passes_everything(router: RouterClass, worker_context: Context) -> None:
    router.deliver(request(NEW_SPAM))
    assert spamapp.CALLS == [("START", "CONGRATULATIONS YOU ARE A WINNER!!")]
    assert spamapp.HEADERS == ["unsure; 0.5000"]
    assert router.get_state(APP, request(NEW_SPAM)) == "POSTING"


def test_spam_goes_to_the_queue_and_the_state_is_kept(router: RouterClass, worker_context: Context,
                                                    redis_conn: redis.Redis, training: tuple, project_dir: Path) -> None:
    train(Filter("run/spamdb", redis=redis_conn, names=Names("spamapp")), training)
    router.deliver(request(NEW_SPAM))
    assert spamapp.CALLS == []  # START did not run
    assert router.get_state(APP, request(NEW_SPAM)) == "START"  # next_state=None: stays where it was
    queued = Queue(project_dir / "run" / "spam")
    ((key, kept),) = list(queued)
    assert kept[CLASSIFICATION_HEADER].startswith("spam; ")
    assert b"CONGRATULATIONS" in kept.as_bytes()


def test_ham_runs_the_state_with_the_header(router: RouterClass, worker_context: Context,
                                            redis_conn: redis.Redis, training: tuple, project_dir: Path) -> None:
    train(Filter("run/spamdb", redis=redis_conn, names=Names("spamapp")), training)
    message = request(NEW_HAM)
    router.deliver(message)
    assert spamapp.CALLS == [("START", "patch review for the release branch")]
    (seen,) = spamapp.HEADERS
    assert seen is not None and seen.startswith("ham; 0.0")  # the state function sees the verdict
    assert router.get_state(APP, message) == "POSTING"
    assert not (project_dir / "run" / "spam").exists() or Queue(project_dir / "run" / "spam").count() == 0


def test_spam_in_a_later_state_moves_to_next_state(router: RouterClass, worker_context: Context,
                                                   redis_conn: redis.Redis, training: tuple, project_dir: Path) -> None:
    router.deliver(request(NEW_HAM))  # untrained: START runs, the sender is now POSTING
    train(Filter("run/spamdb", redis=redis_conn, names=Names("spamapp")), training)
    router.deliver(request(NEW_SPAM))
    assert [name for name, _ in spamapp.CALLS] == ["START"]
    assert router.get_state(APP, request(NEW_SPAM)) == "QUARANTINED"
    assert Queue(project_dir / "run" / "spam").count() == 1


def test_stateless_filtered_function_with_its_own_config(router: RouterClass, worker_context: Context,
                                                         redis_conn: redis.Redis, training: tuple,
                                                         project_dir: Path) -> None:
    train(Filter("run/spamdb", redis=redis_conn, names=Names("spamapp")), training)
    router.deliver(request(NEW_SPAM, to="log-x@test.com"))
    router.deliver(request(NEW_HAM, to="log-x@test.com"))
    assert spamapp.CALLS == [("LOG", "patch review for the release branch")]
    assert Queue(project_dir / "run" / "spam-log").count() == 1


def test_memory_store_switch_for_tests_without_redis(router: RouterClass, training: tuple,
                                                     project_dir: Path) -> None:
    use_memory_store()
    train(Filter("run/spamdb"), training)  # the same storage name as the handlers': the same store
    router.deliver(request(NEW_HAM))
    router.deliver(request(NEW_SPAM))
    assert [name for name, _ in spamapp.CALLS] == ["START"]
    assert router.get_state(APP, request(NEW_SPAM)) == "QUARANTINED"
    assert Queue(project_dir / "run" / "spam").count() == 1
