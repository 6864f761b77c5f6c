"""Fixtures for the list handlers: fresh members, confirmations and captured mail for every test."""

from collections.abc import Iterator
from typing import Any

import pytest
from config import settings

from lamson.mail import MailRequest
from lamson.testing import clear_queue, queue


@pytest.fixture
def lists(lamson_router: Any) -> Iterator[Any]:
    """The routed application with nobody subscribed, nothing pending, nothing captured."""
    settings.members.clear()
    settings.confirm.storage.clear()
    clear_queue()
    yield settings
    settings.members.clear()
    settings.confirm.storage.clear()
    clear_queue()


def sent_to(address: str) -> list[MailRequest]:
    """What the application sent to ``address`` (envelope recipient), oldest first."""
    return [m for m in queue() if m.To == address]
