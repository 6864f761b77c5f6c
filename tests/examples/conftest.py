"""What the example applications' tests share: a copy of an example as a new user has it, short paths."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO


def copy_example(name: str, tmp_path: Path) -> Path:
    """examples/NAME as a new user has it (its state folders hold only their README.md), under
    tmp/examples/NAME, with tmp/.venv linking to this repository's virtualenv so that the copy's
    checkout-relative paths (deploy/supervisord.conf's PATH, muttrc) find ``lamson``."""
    root = tmp_path / "examples" / name
    shutil.copytree(REPO / "examples" / name, root, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    for state in ("run", "logs", "app/data", "app/store"):
        for entry in (root / state).iterdir() if (root / state).is_dir() else ():
            if entry.name != "README.md":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    return root


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A scratch folder with a short path: supervisord's socket (run/supervisor.sock) must fit the
    107 bytes AF_UNIX allows, which pytest-xdist's tmp_path (popen-gwN/test_name0/...) can exceed."""
    path = Path(tempfile.mkdtemp(prefix="lamson-ex-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
