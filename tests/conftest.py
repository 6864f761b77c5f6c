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
