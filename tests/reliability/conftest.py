"""Fixtures of the fault tests: the end-to-end pipeline (imported, not copied), a ledger client, and the
applications a test starts (each App's processes ended by pid when the test ends, even on failure)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import pipeline  # noqa: F401 - the real supervisord.conf on free ports
from tests.relay.conftest import kit  # noqa: F401,E402 - the relay stage in-process
from tests.reliability.test_lifecycle_pipeline import App


@pytest.fixture
def apps() -> Iterator[list[App]]:
    """Append every App a test makes; all their processes are stopped by pid at the end."""
    started: list[App] = []
    try:
        yield started
    finally:
        for app in started:
            app.stop()
