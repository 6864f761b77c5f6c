from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.relaykit import RelayKit


@pytest.fixture
def kit(tmp_path: Path, redis_conn: redis.Redis) -> Iterator[RelayKit]:
    k = RelayKit(tmp_path, redis_conn)
    yield k
    k.close()
