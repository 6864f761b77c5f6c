"""Process logging: one line per event on stderr, which supervisord files under logs/."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


class _Handler(logging.StreamHandler):
    """The root handler setup() installs, marked so that it is installed once."""

    _lamson = True


def setup(level: str | int | None = None) -> None:
    """Configure the root logger once per process (LAMSON_LOG_LEVEL overrides the level)."""
    level = level or os.environ.get("LAMSON_LOG_LEVEL", "INFO")
    root = logging.getLogger()
    if not any(getattr(h, "_lamson", False) for h in root.handlers):
        handler = _Handler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    # aiosmtpd logs every protocol line at INFO: useful when debugging, a cost at hundreds of messages a second.
    logging.getLogger("mail.log").setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)


def _enabled_loggers() -> set[str]:
    manager = logging.Logger.manager
    return {name for name, found in list(manager.loggerDict.items())
            if isinstance(found, logging.Logger) and not found.disabled}


@contextmanager
def loggers_kept_enabled() -> Iterator[list[str]]:
    """Undo, on exit, the disabling of every logger that was enabled on entry.

    The guide's ``config/boot.py`` calls ``logging.config.fileConfig(...)``,
    whose ``disable_existing_loggers=True`` default silently mutes every
    logger created before it runs: Lamson's own (``lamson.workers``,
    ``lamson.router``, ...) and rq's, which are exactly the ones that say why
    a message was not handled. Whatever the boot configures (handlers,
    levels, formats) stays; only the muting is undone. The names re-enabled
    are in the yielded list, filled on exit.
    """
    before = _enabled_loggers()
    restored: list[str] = []
    try:
        yield restored
    finally:
        manager = logging.Logger.manager
        for name in sorted(before):
            found = manager.loggerDict.get(name)
            if isinstance(found, logging.Logger) and found.disabled:
                found.disabled = False
                restored.append(name)
