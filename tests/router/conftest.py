"""Router tests: every test starts from a new process's Router and restores it after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamson.router import RouterClass
from lamson.testing import reset_router, router_snapshot
from tests.router.handlers import blog, keyed, noerror, other, sample, target, twostep


@pytest.fixture
def router() -> Iterator[RouterClass]:
    with router_snapshot():
        for module in (sample, noerror, keyed, other, target, twostep, blog):
            module.CALLS.clear()
        yield reset_router()
