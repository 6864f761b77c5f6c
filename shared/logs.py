"""Process logging: one line per event on stderr, which supervisord files under logs/.

Log lines carry what strangers typed (SMTP commands, addresses, HELO names),
so the formatter escapes control characters: an ESC sequence in a command
must not drive the terminal of whoever runs ``less -R`` or ``tail -f`` on
``logs/lamson.log``, and a CR or LF must not forge a log line.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"

#: What is escaped in a log line: C0 controls (CR, LF, ESC, BEL, ...), DEL, C1 controls
#: (0x9b is a one-octet CSI on some terminals), the bidirectional and invisible format
#: characters (U+202E and friends reorder what the reader sees), line and paragraph
#: separators, and the lone surrogates that stand for undecodable octets.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
#: The same minus LF and TAB: for tracebacks, which are multi-line by nature.
_CONTROL_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the undecodable octet itself
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control or bidi character written as ``\\xNN`` / ``\\uNNNN``.

    Costs one regex scan when there is nothing to escape (the usual case).
    """
    pattern = _CONTROL_MULTILINE if keep_newlines else _CONTROL
    return pattern.sub(_escape_one, text) if pattern.search(text) else text


class SafeFormatter(logging.Formatter):
    """A Formatter whose lines cannot carry terminal escapes or forged line breaks.

    The message (after %-formatting with its arguments) is escaped entirely,
    CR and LF included; an appended traceback keeps its line breaks.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return escape_controls(super().formatException(ei), keep_newlines=True)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return escape_controls(super().formatStack(stack_info), keep_newlines=True)


class _Handler(logging.StreamHandler):
    """The root handler setup() installs, marked so that it is installed once."""

    _lamson = True


def setup(level: str | int | None = None) -> None:
    """Configure the root logger once per process (LAMSON_LOG_LEVEL overrides the level)."""
    level = level or os.environ.get("LAMSON_LOG_LEVEL", "INFO")
    root = logging.getLogger()
    if not any(getattr(h, "_lamson", False) for h in root.handlers):
        handler = _Handler(sys.stderr)
        handler.setFormatter(SafeFormatter(FORMAT))
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
