"""The whole package type-checks strictly: mypy over ``lamson`` as installed, with pyproject's
[tool.mypy], whose ``strict = true`` makes ``mypy -p lamson`` the same check as ``mypy --strict -p lamson``
(CI runs this test with the rest of the suite).

scripts/setup installs Lamson in setuptools' strict editable mode, a tree of links
under build/ laid out as the package, which mypy follows; the errors are shown
with the paths of the source files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support import REPO


def _source_paths(output: str) -> str:
    """mypy names the files of the link tree; name the files they link to."""
    def real(found: re.Match[str]) -> str:
        path = os.path.realpath(found.group(0))
        return os.path.relpath(path, REPO) if path.startswith(str(REPO) + os.sep) else path

    return re.sub(r"\S*__editable__\S*?\.py(?=:)", real, output)


def test_mypy_is_clean() -> None:
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.fail("mypy is not installed: run bash scripts/setup --test")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "-p", "lamson"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    output = _source_paths(done.stdout + done.stderr)
    assert done.returncode == 0, f"mypy -p lamson failed:\n{output}"
