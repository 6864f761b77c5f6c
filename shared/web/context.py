"""What every part of ``lamson web`` is handed: one object per process (docs/design.md, "One runtime
per process").

The web process is a tool of the application, like ``lamson queue``: it reads the application's
settings, its folders and its Redis, and sends mail to its receiver. Request handlers get all of that
from a :class:`WebContext` built once when the server starts, never from module globals, so a test can
run two web applications (two projects) in one process.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from lamson.typed_settings import Settings


@dataclass
class WebContext:
    """The settings, paths and connections of the application ``lamson web`` shows."""

    #: The application's settings, typed (``settings.module`` is the settings module itself).
    settings: Settings
    #: The project root (the folder holding ``config/``); relative folders in the settings are
    #: resolved against it.
    root: Path
    #: The application's Redis (bytes replies), or None when it has none configured or reachable:
    #: the mail pages work without Redis, the pipeline page says what it cannot show.
    conn: redis.Redis | None
    #: supervisord's XML-RPC socket (``run/supervisor.sock``), when supervisord runs the project.
    supervisor_socket: Path | None = None
    #: Where the receiver listens: messages composed in the browser are sent there over SMTP.
    receiver: tuple[str, int] = ("127.0.0.1", 8823)
    #: The secret the pages send back with every POST (double-submit CSRF token, lamson.web.security).
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: The password the pages ask for (HTTP Basic), or None: loopback only (lamson.web.security).
    password: str | None = None
    #: Things the parts keep between requests (the mail index, the rate sampler), by name.
    services: dict[str, Any] = field(default_factory=dict)
    #: Held while a part creates one of its ``services`` (requests run in several threads at once).
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def path(self, setting_value: str) -> Path:
        """A folder named in the settings, relative ones resolved against the project root."""
        p = Path(setting_value)
        return p if p.is_absolute() else self.root / p
