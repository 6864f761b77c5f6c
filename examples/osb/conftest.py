"""pytest setup for the one-shot blog: boot config/testing.py once (no servers, no Redis)."""

import config.testing  # noqa: F401 - configures settings, the Router and templates for tests

# The `lamson_router` fixture: the loaded routes with fresh state for each test.
pytest_plugins = ["lamson.testing.fixtures"]
