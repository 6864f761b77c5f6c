"""Fixtures: a real Redis on a free port (session-wide), emptied for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis

from tests.support import redis_server

# Nothing in the suite may send DNS queries beyond loopback: sender authentication (SPF, DKIM,
# DMARC lookups) is off for every process the tests start, unless a test configures it against
# its own loopback DNS server (tests/dnsserver.py) in settings it builds itself.
os.environ["LAMSON_AUTH_RESULTS"] = "0"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private redis-server for the whole run. No redis-server: the run fails."""
    with redis_server(tmp_path_factory.mktemp("redis")) as (url, _proc):
        yield url


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the private Redis, with the database emptied before the test."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.close()


class Stoppable(Protocol):
    def stop(self) -> None: ...


@pytest.fixture
def apps() -> Iterator[list[Any]]:
    """Append every application a test starts (tests.reliability.test_lifecycle_pipeline.App): all their
    processes are stopped by pid at the end, even when the test fails."""
    started: list[Stoppable] = []
    try:
        yield started
    finally:
        for app in started:
            app.stop()


@pytest.fixture
def no_context() -> Iterator[None]:
    """No runtime installed for the test (lamson.context), whatever was before; restored after."""
    from lamson import context

    previous = context.get()
    context.install(None)
    yield
    context.install(previous)


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch directory used as the current directory (run/, logs/ go here)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


#: Modules whose tests run longest (``pytest --durations=45``), longest first.
LONG = (
    "tests/reliability/test_faults_redis_outage.py",
    "tests/reliability/test_faults_kill.py",
    "tests/reliability/test_netns_hosts.py",
    "tests/reliability/test_attacks_auth.py",
    "tests/reliability/test_attacks_osb.py",
    "tests/reliability/test_attacks_list.py",
    "tests/cli/test_project.py",
    "tests/compat/test_guide_project.py",
    "tests/reliability/test_faults_redis.py",
    "tests/reliability/test_attacks_identity.py",
    "tests/e2e/test_stops.py",
    "tests/reliability/test_lifecycle_pipeline.py",
    "tests/relay/test_paths.py",
    "tests/reliability/test_faults_redis_lifecycle.py",
    "tests/workers/test_redis_versions.py",
    "tests/reliability/test_faults_router.py",
    "tests/reliability/test_faults_stop.py",
    "tests/reliability/test_sentinel.py",
    "tests/test_typing.py",
)


def _workers(config: pytest.Config) -> int:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return int(workerinput["workercount"])
    count = getattr(config.option, "numprocesses", None)
    return count if isinstance(count, int) and count > 0 else 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deal the long modules' tests (LONG) to the front of each xdist worker's first block.

    xdist's ``worksteal`` (pyproject.toml) starts each of N workers on a
    contiguous block of the collection, and a worker that runs out takes
    tests from the *end* of another's block. So the long tests go first in
    the blocks, dealt in turn, longest first: every worker starts on its share
    of them while the short tests at the ends of the blocks are left to
    whoever is free. (Plain ``load`` with the long tests in one block in a row
    took 10 minutes where this takes about 6.) The order is deterministic, as
    xdist requires of every worker's collection.
    """
    workers = _workers(config)
    rank = {path: i for i, path in enumerate(LONG)}
    module = [item.nodeid.split("::", 1)[0] for item in items]
    slow = sorted((i for i, m in enumerate(module) if m in rank), key=lambda i: rank[module[i]])
    if not slow or workers < 2:
        return
    rest = [items[i] for i, m in enumerate(module) if m not in rank]
    blocks: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for n, i in enumerate(slow):
        blocks[n % workers].append(items[i])
    left = len(items)
    taken = 0
    ordered: list[pytest.Item] = []
    for b, block in enumerate(blocks):  # sizes as xdist cuts them: what is left over the workers left
        size = left // (workers - b)
        fill = max(0, size - len(block))
        ordered.extend(block + rest[taken:taken + fill])
        taken += fill
        left -= len(block) + fill
    ordered.extend(rest[taken:])
    items[:] = ordered
