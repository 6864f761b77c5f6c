"""Process logging: one line per event on stderr, which supervisord files under logs/."""

from __future__ import annotations

import logging
import os
import sys

FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


def setup(level: str | int | None = None) -> None:
    """Configure the root logger once per process (LAMSON_LOG_LEVEL overrides the level)."""
    level = level or os.environ.get("LAMSON_LOG_LEVEL", "INFO")
    root = logging.getLogger()
    if not any(getattr(h, "_lamson", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._lamson = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # aiosmtpd logs every protocol line at INFO: useful when debugging, a cost at hundreds of messages a second.
    logging.getLogger("mail.log").setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
