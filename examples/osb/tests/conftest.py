"""Each test gets its own blog: the site, the records and the Maildir queues under tmp_path."""

import pytest
from config import settings

from lamson.spam import MemoryStore
from lamson.testing import clear_queue


@pytest.fixture
def blog(tmp_path, monkeypatch, lamson_router):
    """The blog's folders in tmp_path, confirmations and spam counts forgotten; returns the site folder.

    The test runs in tmp_path, so run/queue (the test queue) and run/spam are its own too.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(settings.blog_config, "site", str(tmp_path / "data"))
    monkeypatch.setitem(settings.blog_config, "store", str(tmp_path / "store"))
    monkeypatch.setitem(settings.queue_config, "queue", str(tmp_path / "index"))
    monkeypatch.setattr(settings, "pending_config",
                        {"posts": str(tmp_path / "pending-posts"), "comments": str(tmp_path / "pending-comments")})
    settings.confirm_storage.clear()
    MemoryStore.forget_all()
    clear_queue()
    return tmp_path / "data"
