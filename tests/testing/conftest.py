"""Fixtures for lamson.testing's tests: the Router as a new process has it, restored after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamson.router import RouterClass
from lamson.testing import reset_router, router_snapshot


@pytest.fixture
def router() -> Iterator[RouterClass]:
    with router_snapshot():
        yield reset_router()


@pytest.fixture(autouse=True)
def no_captures_from_other_tests() -> Iterator[None]:
    """Each test starts with no captured mail (captures are per process, keyed by folder)."""
    from lamson.testing.relay import SENT

    SENT.clear()
    yield
    SENT.clear()
