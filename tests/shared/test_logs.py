"""lamson.logs: the text and json formats, the message id of the code running, setup from settings."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.job import Job

from lamson import logs
from lamson.settings import DEFAULTS
from lamson.settings_check import check


def record(msg: str, *args: Any, level: int = logging.INFO, exc: bool = False, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("lamson.test", level, __file__, 1, msg, args, sys.exc_info() if exc else None)
    made.__dict__.update(extra)
    return made


def raised(text: str) -> logging.LogRecord:
    try:
        raise ValueError(text)
    except ValueError:
        return record("handler failed on %s", "a@example.org", level=logging.ERROR, exc=True)


TEXT = logs.SafeFormatter(logs.FORMAT)
JSON = logs.JSONFormatter()


def test_a_traceback_is_an_indented_block_that_cannot_forge_a_line() -> None:
    forged = "bad\n2026-01-01 00:00:00,000 1 lamson.router INFO forged\r\x1b[2J"
    lines = TEXT.format(raised(forged)).split("\n")
    assert " lamson.test ERROR handler failed on a@example.org" in lines[0]
    assert lines[1] == "    Traceback (most recent call last):"
    assert all(line.startswith("    ") for line in lines[1:])  # only the event's own line starts at the margin
    assert "    ValueError: bad" in lines
    assert "    2026-01-01 00:00:00,000 1 lamson.router INFO forged\\x0d\\x1b[2J" in lines


def test_a_message_stays_one_line_whatever_its_arguments() -> None:
    text = TEXT.format(record("from %s", "x\r\n2026-01-01 00:00:00,000 1 lamson INFO forged\u202e"))
    assert "\n" not in text and "\r" not in text and "\\x0d\\x0a2026" in text and "\\u202e" in text


def test_rqs_traceback_in_its_message_is_taken_out_and_shown_as_a_block(redis_conn: redis.Redis) -> None:
    """rq's worker formats a failed job's traceback into its message; it is a block, not one line of \\x0a."""
    worker = SimpleWorker([Queue("tl", connection=redis_conn)], connection=redis_conn)
    job = Job.create(func="builtins.print", connection=redis_conn)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TEXT)
    rq_log = logging.getLogger("rq.worker")
    rq_log.addHandler(handler)
    try:
        try:
            raise RuntimeError("job broke")
        except RuntimeError:
            worker.handle_exception(job, *sys.exc_info())
    finally:
        rq_log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    (first,) = [n for n, line in enumerate(lines) if "exception raised while executing" in line]
    assert lines[first].endswith("exception raised while executing (builtins.print)"), lines[first]
    assert lines[first + 1] == "    Traceback (most recent call last):"
    assert "    RuntimeError: job broke" in lines
    assert "\\x0a" not in stream.getvalue()

    job_record = logging.LogRecord("rq.worker", logging.ERROR, __file__, 1,
                                   "Worker %s: job %s: exception raised while executing (%s)\n%s",
                                   ("w", "j", "f", "Traceback (most recent call last):\n  x\nE: y\n"), None)
    parsed = json.loads(JSON.format(job_record))
    assert parsed["message"] == "Worker w: job j: exception raised while executing (f)"
    assert parsed["traceback"] == "Traceback (most recent call last):\n  x\nE: y"


def test_lines_name_the_message_being_handled_once() -> None:
    with logs.about("ABC123"):
        assert logs.current_id() == "ABC123"
        assert TEXT.format(record("a handler's own line")).endswith(" INFO ABC123: a handler's own line")
        assert TEXT.format(record("ABC123: routed to 1 recipient(s)")).endswith(" INFO ABC123: routed to 1 recipient(s)")
        assert json.loads(JSON.format(record("x")))["id"] == "ABC123"
        with logs.about(None):  # a reply written by a script names no message
            assert logs.current_id() is None
    assert logs.current_id() is None
    assert TEXT.format(record("no message")).endswith(" INFO no message")
    assert "id" not in json.loads(JSON.format(record("no message")))
    assert json.loads(JSON.format(record("accepted", lamson_id="DEF456")))["id"] == "DEF456"


def test_json_is_one_parseable_object_per_event_with_the_traceback_as_a_field() -> None:
    line = JSON.format(raised("bad\n2026 forged\x1b[2J \u202e"))
    assert "\n" not in line and line.isascii() and "\x1b" not in line
    parsed = json.loads(line)
    assert set(parsed) == {"time", "level", "logger", "process", "message", "traceback"}
    assert (parsed["level"], parsed["logger"], parsed["message"]) == ("ERROR", "lamson.test",
                                                                      "handler failed on a@example.org")
    assert parsed["traceback"].startswith("Traceback (most recent call last):\n")
    assert parsed["traceback"].endswith("ValueError: bad\n2026 forged\x1b[2J \u202e")
    assert parsed["process"] > 0 and parsed["time"].endswith("Z")


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level put back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def ours(root: logging.Logger) -> logging.Handler:
    (handler,) = [h for h in root.handlers if getattr(h, "_lamson", False)]
    return handler


def test_setup_takes_log_format_from_settings_and_the_environment(root_logger: logging.Logger,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMSON_LOG_FORMAT", raising=False)
    logs.setup()
    assert isinstance(ours(root_logger).formatter, logs.SafeFormatter)
    logs.setup(settings=SimpleNamespace(log_format="json"))  # again, with the settings: one handler, now json
    assert isinstance(ours(root_logger).formatter, logs.JSONFormatter)
    monkeypatch.setenv("LAMSON_LOG_FORMAT", "text")
    logs.setup(settings=SimpleNamespace(log_format="json"))
    assert isinstance(ours(root_logger).formatter, logs.SafeFormatter)
    monkeypatch.delenv("LAMSON_LOG_FORMAT")
    stream = io.StringIO()
    ours(root_logger).setStream(stream)  # type: ignore[attr-defined]
    logs.setup(settings=SimpleNamespace(log_format="xml"))
    assert isinstance(ours(root_logger).formatter, logs.SafeFormatter)
    assert "log_format must be one of 'text', 'json', not 'xml'; writing the text format" in stream.getvalue()


def test_lamson_check_names_a_wrong_log_format() -> None:
    good = SimpleNamespace(**{**DEFAULTS, "log_format": "json"})
    assert not [f for f in check(good) if f.setting == "log_format"]
    (finding,) = [f for f in check(SimpleNamespace(**{**DEFAULTS, "log_format": "JSON"})) if f.setting == "log_format"]
    assert str(finding) == "error: log_format: must be 'text' or 'json', not 'JSON', did you mean 'json'?"
    (finding,) = [f for f in check(SimpleNamespace(**{**DEFAULTS, "log_format": 1})) if f.setting == "log_format"]
    assert finding.level == "error"
