"""Fixtures: a real Redis on a free port (session-wide), emptied for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch directory used as the current directory (run/, logs/ go here)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


#: Modules whose tests run longest (``pytest --durations=45``), longest first. xdist hands tests out in
#: collection order, so these would otherwise start last and leave the run waiting on one of them
#: while the other workers idle; started first, they overlap with everything else.
LONG_FIRST = (
    "tests/reliability/test_faults_redis_outage.py",
    "tests/reliability/test_faults_kill.py",
    "tests/reliability/test_netns_hosts.py",
    "tests/cli/test_project.py",
    "tests/compat/test_guide_project.py",
    "tests/reliability/test_faults_redis.py",
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the long tests first (LONG_FIRST); the rest keep their order."""
    rank = {path: i for i, path in enumerate(LONG_FIRST)}

    def key(item: pytest.Item) -> int:
        return rank.get(item.nodeid.split("::", 1)[0], len(LONG_FIRST))

    items.sort(key=key)  # stable: within a module, and among the others, collection order stays
