"""Fixtures of the fault tests: the end-to-end pipeline and the relay kit (imported, not copied); ``apps``,
the applications a test starts, is in tests/conftest.py."""

from __future__ import annotations

from tests.e2e.conftest import pipeline  # noqa: F401 - the real supervisord.conf on free ports
from tests.relay.conftest import kit  # noqa: F401,E402 - the relay stage in-process

