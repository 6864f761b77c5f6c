"""Store every message in a Maildir queue (the guide's ``lamson.handlers.queue``).

Stateless and lock-free: each message is pushed, durably and as received,
to ``settings.queue_dir`` (``run/queue`` unless the application says
otherwise), where mutt, ``lamson queue`` or a queue worker can read it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lamson import context
from lamson.queue import Queue
from lamson.router import nolocking, route, stateless
from lamson.settings import DEFAULTS

log = logging.getLogger("lamson.handlers.queue")

#: Where messages go when the settings name no queue_dir (the guide's run/queue).
DEFAULT_QUEUE: str = DEFAULTS["queue_dir"]

_queues: dict[Path, Queue] = {}


def queue() -> Queue:
    """The Queue messages go to (opened once per directory)."""
    path = Path(getattr(app_settings(), "queue_dir", None) or DEFAULT_QUEUE).absolute()
    if path not in _queues:
        _queues[path] = Queue(path)
    return _queues[path]


app_settings = context.app_settings


@route("(to)@(host)", to=".+", host=".+")
@stateless
@nolocking
def START(message: Any, to: str | None = None, host: str | None = None) -> None:  # noqa: N802 - guide style
    target = queue()
    key = target.push(message)
    log.info("message to <%s> from <%s> queued in %s as %s", message.To, message.From, target.path, key)
