"""Process logging: one event per line, in the program's file under logs/ or on stderr.

Under deploy/supervisord.conf each program writes its own log file (``LAMSON_LOG_FILE``,
:class:`LogFile`); run by hand, it logs to stderr.

Log lines carry what strangers typed (SMTP commands, addresses, HELO names),
so the formatters escape control characters: an ESC sequence in a command
must not drive the terminal of whoever runs ``less -R`` or ``tail -f`` on
``logs/lamson.log``, and a CR or LF must not forge a log line.

Two formats (``log_format``; ``LAMSON_LOG_FORMAT`` overrides it):

* ``"text"``: ``time pid logger LEVEL message``, one line per event. A
  traceback follows its event as a block of lines, each indented by four
  spaces: every line that starts at the left margin is an event, so even an
  exception message a stranger chose (an address with a line break in it)
  cannot pass for one.
* ``"json"``: one JSON object per line per event (``time``, ``level``,
  ``logger``, ``process``, ``message``, ``id`` when known, ``traceback``
  when there is one), for log shippers. JSON escapes every control
  character itself, and non-ASCII is written as ``\\uXXXX``.

Following a message: the id the receiver gives each message it accepts (the
one in its ``250 ... queued as ID`` reply and in its ``Received`` header,
:attr:`lamson.envelope.Envelope.id`) is named in every line of its journey.
Lamson's own lines write it in their message; around the handling of one
message, :func:`about` makes it known to the formatters too, so a line an
application's handler logs meanwhile starts with ``ID:`` (text) or has it as
``id`` (json), and ``grep ID logs/*`` tells the message's whole story.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
#: The values of the ``log_format`` setting.
FORMATS = ("text", "json")
#: What starts every line of a traceback in the text format (never an event's first character).
TRACEBACK_INDENT = "    "

#: What is escaped in a log line: C0 controls (CR, LF, ESC, BEL, ...), DEL, C1 controls
#: (0x9b is a one-octet CSI on some terminals), the bidirectional and invisible format
#: characters (U+202E and friends reorder what the reader sees), line and paragraph
#: separators, and the lone surrogates that stand for undecodable octets.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
#: The same minus LF and TAB: for tracebacks, which are multi-line by nature.
_CONTROL_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
#: How a traceback formatted into a message as text begins (rq's worker logs a failed job so).
_TRACEBACK_START = "Traceback (most recent call last):"

#: The message whose handling is being logged (its receiver id), set by :func:`about`.
_about: contextvars.ContextVar[str | None] = contextvars.ContextVar("lamson_log_about", default=None)


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


# -- the message being handled -------------------------------------------------


@contextmanager
def about(message_id: str | None) -> Iterator[None]:
    """While the message ``message_id`` is handled: lines logged meanwhile name it.

    A context variable, so it costs two assignments per message and follows
    the code that handles the message (threads and asyncio tasks each see
    their own); None or "" names nothing.
    """
    token = _about.set(message_id or None)
    try:
        yield
    finally:
        _about.reset(token)


def current_id() -> str | None:
    """The id :func:`about` set for the code running now, or None."""
    return _about.get()


def record_id(record: logging.LogRecord) -> str | None:
    """The message a record is about: ``extra={"lamson_id": ...}`` if given, else :func:`current_id`."""
    given = getattr(record, "lamson_id", None)
    return str(given) if given else _about.get()


def split_traceback(record: logging.LogRecord) -> tuple[str, str | None]:
    """The record's message, and a traceback that was formatted into it as text (else None).

    rq's worker logs a job that raised as ``"... (%s)\\n%s"`` with the
    formatted traceback as the last argument: escaped as message text, that
    would be one line of ``\\x0a``. It is taken out here and shown as the
    traceback it is.
    """
    msg, args = record.msg, record.args
    if (isinstance(msg, str) and msg.endswith("\n%s") and isinstance(args, tuple) and args
            and isinstance(args[-1], str) and args[-1].startswith(_TRACEBACK_START)):
        try:
            return msg[:-3] % args[:-1], args[-1].rstrip("\n")
        except (TypeError, ValueError):
            pass
    return record.getMessage(), None


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord, extra: str | None) -> str | None:
    """The traceback of a record (``exc_info``) or the one taken out of its message, unescaped."""
    parts = []
    if extra:
        parts.append(extra)
    if record.exc_info and record.exc_info[0] is not None:
        parts.append(logging.Formatter.formatException(formatter, record.exc_info).rstrip("\n"))
    elif record.exc_text:
        parts.append(record.exc_text.rstrip("\n"))
    return "\n".join(parts) if parts else None


class SafeFormatter(logging.Formatter):
    """The ``"text"`` format: lines that cannot carry terminal escapes or forged line breaks.

    The message (after %-formatting with its arguments) is escaped entirely,
    CR and LF included, and starts with the id of the message being handled
    (:func:`about`) unless it names it already. A traceback, from
    ``exc_info`` or taken out of the message (:func:`split_traceback`),
    follows as a block of lines, each indented by :data:`TRACEBACK_INDENT`
    and escaped but for its line breaks and tabs.
    """

    def format(self, record: logging.LogRecord) -> str:
        message, traceback_text = split_traceback(record)
        message = escape_controls(message)
        ident = record_id(record)
        if ident and ident not in message:
            message = f"{ident}: {message}"
        record.message = message
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self._style.format(record)
        block = _exception_text(self, record, traceback_text)
        if block:
            line += "\n" + self.indent(escape_controls(block, keep_newlines=True))
        if record.stack_info:
            line += "\n" + self.indent(escape_controls(self.formatStack(record.stack_info), keep_newlines=True))
        return line

    @staticmethod
    def indent(block: str) -> str:
        return TRACEBACK_INDENT + block.rstrip("\n").replace("\n", "\n" + TRACEBACK_INDENT)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return escape_controls(super().formatException(ei), keep_newlines=True)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return escape_controls(super().formatStack(stack_info), keep_newlines=True)


#: One encoder for every line; ensure_ascii writes every control and non-ASCII character as an escape.
_JSON = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str)


class JSONFormatter(logging.Formatter):
    """The ``"json"`` format: one JSON object per event, on one line.

    Fields: ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``,
    ``process``, ``message``, ``id`` (the message being handled, when known),
    ``traceback`` and ``stack`` (when there is one). The JSON encoder escapes
    every control character (a line break is ``\\n`` inside a string), so a
    line is always exactly one event, whatever strangers typed.
    """

    def format(self, record: logging.LogRecord) -> str:
        message, traceback_text = split_traceback(record)
        seconds = time.gmtime(record.created)
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": message,
        }
        ident = record_id(record)
        if ident:
            entry["id"] = ident
        block = _exception_text(self, record, traceback_text)
        if block:
            entry["traceback"] = block
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _JSON.encode(entry)


def formatter(log_format: str = "text") -> logging.Formatter:
    """The formatter of a ``log_format`` value (ValueError for another)."""
    if log_format == "text":
        return SafeFormatter(FORMAT)
    if log_format == "json":
        return JSONFormatter()
    raise ValueError(f"log_format must be one of {', '.join(map(repr, FORMATS))}, not {log_format!r}")


class _Handler(logging.StreamHandler[TextIO]):
    """The root handler setup() installs, marked so that it is installed once."""

    _lamson = True


#: The environment variable naming the file a program writes its log to itself (deploy/supervisord.conf
#: sets it per program); unset, it logs to stderr.
LOG_FILE_ENV = "LAMSON_LOG_FILE"

#: When a log file is rotated, and how many old ones are kept: supervisord's defaults for the
#: logs it wrote itself (``stdout_logfile_maxbytes``, ``stdout_logfile_backups``).
LOG_FILE_MAX_BYTES = 50 * 1024 * 1024
LOG_FILE_BACKUPS = 10


class LogFile(logging.FileHandler):
    """A program's own log file: rotated at :data:`LOG_FILE_MAX_BYTES`, and reopened when moved away.

    Why not stderr through supervisord: supervisord reads every program's pipe and
    rewrites what it reads, in Python; at INFO (a few lines a message) that cost
    more CPU than Redis did for the whole pipeline. Written here, a line is one
    ``write`` to the file (appended: supervisord still appends to the same file
    what the program writes to stderr, such as a crash before logging is set up).
    Rotation keeps supervisord's old behaviour (50 MB, 10 old files); a file moved
    by logrotate or by hand is noticed at the next line and a new one opened, as
    ``logging.handlers.WatchedFileHandler`` does. Not ``RotatingFileHandler``: it
    formats every record twice (once to decide whether to rotate).
    """

    _lamson = True

    def __init__(self, filename: str, max_bytes: int = LOG_FILE_MAX_BYTES, backups: int = LOG_FILE_BACKUPS) -> None:
        super().__init__(filename, mode="a", encoding="utf-8")
        self.max_bytes = max_bytes
        self.backups = backups
        self._identity, self._size = self._stat()

    def _stat(self) -> tuple[tuple[int, int] | None, int]:
        try:
            st = os.stat(self.baseFilename)
        except OSError:
            return None, 0
        return (st.st_dev, st.st_ino), st.st_size

    def _reopen(self) -> TextIO:
        if self.stream is not None:
            self.stream.close()
        self.stream = stream = self._open()
        self._identity, self._size = self._stat()
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream: TextIO | None = self.stream
            if stream is None or self._stat()[0] != self._identity:  # moved or removed (logrotate): a new file
                stream = self._reopen()
            line = self.format(record) + "\n"
            stream.write(line)
            stream.flush()
            self._size += len(line)
            if self.max_bytes and self._size >= self.max_bytes:
                self.rotate_now()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def rotate_now(self) -> None:
        """FILE.9 becomes FILE.10 (the oldest is dropped), ..., FILE becomes FILE.1, then a new FILE."""
        if self.backups > 0:
            for n in range(self.backups - 1, 0, -1):
                older = f"{self.baseFilename}.{n}"
                if os.path.exists(older):
                    os.replace(older, f"{self.baseFilename}.{n + 1}")
            os.replace(self.baseFilename, f"{self.baseFilename}.1")
        else:
            os.truncate(self.baseFilename, 0)
        self._reopen()


def _root_handler() -> logging.Handler:
    """What setup() installs: :class:`LogFile` on ``LAMSON_LOG_FILE`` when it is set, else stderr."""
    path = os.environ.get(LOG_FILE_ENV, "").strip()
    if path:
        try:
            return LogFile(path)
        except OSError as exc:
            print(f"lamson: cannot open {LOG_FILE_ENV}={path!r} ({exc}); logging to stderr", file=sys.stderr)
    return _Handler(sys.stderr)


def setup(level: str | int | None = None, *, settings: Any = None, log_format: str | None = None) -> None:
    """Configure the root logger once per process; called again, change its level and format.

    The level: ``level``, else ``LAMSON_LOG_LEVEL``, else INFO. The format:
    ``log_format``, else ``LAMSON_LOG_FORMAT``, else the ``log_format`` of
    ``settings``, else text. Processes call this first without settings (so
    that loading them can log), then with them. An unknown format is logged
    and the text format kept (``lamson check`` names the setting).
    """
    from lamson.typed_settings import Settings  # not at the top: lamson.settings_check imports this module

    level = level or os.environ.get("LAMSON_LOG_LEVEL", "INFO")
    wanted = log_format or os.environ.get("LAMSON_LOG_FORMAT") or Settings.of(settings).log_format
    try:
        chosen = formatter(str(wanted))
    except ValueError as exc:
        chosen, problem = SafeFormatter(FORMAT), str(exc)
    else:
        problem = ""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_lamson", False)]
    if not ours:
        ours = [_root_handler()]
        root.addHandler(ours[0])
    for handler in ours:
        handler.setFormatter(chosen)
    root.setLevel(level)
    # aiosmtpd logs every protocol line at INFO: useful when debugging, a cost at hundreds of messages a second.
    logging.getLogger("mail.log").setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
    if problem:
        logging.getLogger("lamson.logs").error("%s; writing the text format", problem)


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
