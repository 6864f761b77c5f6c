"""lamson.private.keep_private: umask 077, run/ and logs/ 0700, the files in them 0600 (issue 21, finding 10)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from lamson.private import keep_private


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_folders_and_files_made_private_and_the_umask_set(tmp_path: Path, umask: None) -> None:
    run, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir(mode=0o755)
    (logs / "lamson.log").write_text("from alice@example.org\n")
    (logs / "lamson.log").chmod(0o644)
    (logs / "old").mkdir(mode=0o755)  # only files directly in the folder are touched
    keep_private(SimpleNamespace(run_dir=str(run), log_dir=str(logs)))
    assert mode(run) == 0o700 and mode(logs) == 0o700
    assert mode(logs / "lamson.log") == 0o600
    assert mode(logs / "old") == 0o755
    assert os.umask(0o077) == 0o077  # what the process makes from now on is its own
    (run / "new").write_text("x")
    assert mode(run / "new") == 0o600


def test_a_symlink_is_not_followed(tmp_path: Path, umask: None) -> None:
    outside = tmp_path / "outside"
    outside.write_text("someone else's")
    outside.chmod(0o644)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "link").symlink_to(outside)
    keep_private(run_dir=tmp_path / "run", log_dir=logs)
    assert mode(outside) == 0o644
