"""pytest fixtures for Lamson applications.

Use them from a ``conftest.py`` with ``pytest_plugins = ["lamson.testing.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamson.router import RouterClass
from lamson.testing.router import router_snapshot


@pytest.fixture
def lamson_router() -> Iterator[RouterClass]:
    """The Router with the application's routes, fresh state and no captured mail; restored after."""
    with router_snapshot() as router:
        yield router
