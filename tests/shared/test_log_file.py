"""A program's own log file (lamson.logs.LogFile, LAMSON_LOG_FILE): rotation and logrotate's moves."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamson import logs


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    """The root logger without Lamson's handler, restored afterwards (setup() installs it once)."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = [h for h in saved if not getattr(h, "_lamson", False)]
    yield root
    for handler in root.handlers:
        if getattr(handler, "_lamson", False):
            handler.close()
    root.handlers, root.level = saved, level


def test_lamson_log_file_makes_setup_write_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     clean_root: logging.Logger) -> None:
    path = tmp_path / "lamson.log"
    monkeypatch.setenv(logs.LOG_FILE_ENV, str(path))
    logs.setup("INFO")
    logging.getLogger("lamson.receiver").info("accepted %s", "ABC\x1b[31m")
    ours = [h for h in clean_root.handlers if getattr(h, "_lamson", False)]
    assert len(ours) == 1 and isinstance(ours[0], logs.LogFile)
    text = path.read_text()
    assert "lamson.receiver INFO accepted ABC\\x1b[31m" in text and text.endswith("\n")


def test_without_it_setup_logs_to_stderr(monkeypatch: pytest.MonkeyPatch, clean_root: logging.Logger) -> None:
    monkeypatch.delenv(logs.LOG_FILE_ENV, raising=False)
    logs.setup("INFO")
    ours = [h for h in clean_root.handlers if getattr(h, "_lamson", False)]
    assert len(ours) == 1 and not isinstance(ours[0], logs.LogFile)


def record(text: str) -> logging.LogRecord:
    return logging.LogRecord("lamson.test", logging.INFO, __file__, 1, text, None, None)


def test_a_file_moved_away_is_noticed_and_a_new_one_opened(tmp_path: Path) -> None:
    path = tmp_path / "relay.log"
    handler = logs.LogFile(str(path))
    try:
        handler.emit(record("before"))
        os.rename(path, tmp_path / "relay.log.1")  # what logrotate does
        handler.emit(record("after"))
    finally:
        handler.close()
    assert (tmp_path / "relay.log.1").read_text() == "before\n"
    assert path.read_text() == "after\n"


def test_rotation_at_max_bytes_keeps_the_newest_backups(tmp_path: Path) -> None:
    path = tmp_path / "router_00.log"
    handler = logs.LogFile(str(path), max_bytes=100, backups=2)
    try:
        for n in range(12):  # 12 lines of 30 octets: a rotation every 4 lines
            handler.emit(record(f"line {n:02d} " + "x" * 21))
    finally:
        handler.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["router_00.log", "router_00.log.1", "router_00.log.2"]
    assert path.read_text() == ""  # the last rotation came with the 12th line
    assert (tmp_path / "router_00.log.1").read_text().splitlines()[0].startswith("line 08")
    assert (tmp_path / "router_00.log.2").read_text().splitlines()[0].startswith("line 04")


def test_appends_to_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "lamson.log"
    path.write_text("a crash supervisord wrote\n")
    handler = logs.LogFile(str(path))
    try:
        handler.emit(record("started again"))
    finally:
        handler.close()
    assert path.read_text() == "a crash supervisord wrote\nstarted again\n"
