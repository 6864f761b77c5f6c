"""A Lamson 1.x-style mailing-list application (tests/compat/listapp/) whose own tests pass unchanged.

The application under tests/compat/listapp/ is written from 1.x's documented
API only (issue 22): 1.x settings, boot and testing boot, a handler module with
`@route`/`@bounce_to` state functions, Jinja2 templates rendered by
`lamson.view.respond`, an archive that writes JSON copies of posts from
`MailResponse.base`, and nose-style tests (plain functions and asserts,
`RouterConversation`, `queue()`, `delivered`, `clear_queue`).

Its tests run here as a 1.x developer ran them: in a copy of the application,
with `lamson log` (the logging server) listening where the application's
`relay_config` points, so the replies its `config/testing.py` Relay sends land
in run/queue, where `queue()` and `delivered()` read them. The only things
given from outside are what differs per machine: free ports (LAMSON_RELAY_PORT,
LAMSON_RECEIVER_PORT) and a private Redis (LAMSON_REDIS_URL), never an edit to
the application. Every process started here is ended by its pid.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import base_env
from tests.support import BIN, free_port, redis_server, spawn, stop_process, wait_port

LISTAPP = Path(__file__).resolve().parent / "listapp"


def test_functions(root: Path) -> list[str]:
    """``file::test_name`` of every test function in the application's ``*_tests.py`` files."""
    found = []
    for path in sorted(root.glob("tests/**/*_tests.py")):
        for name in re.findall(r"^def (test_\w+)\(", path.read_text(), re.MULTILINE):
            found.append(f"{path.relative_to(root)}::{name}")
    return found


test_functions.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture
def listapp(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of the application (with the run/ and logs/ folders `lamson gen` made), its logging server
    running on a free port, a private Redis; yields (root, environment)."""
    root = tmp_path / "listapp"
    shutil.copytree(LISTAPP, root, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "run", "logs"))
    for folder in ("run", "logs"):
        (root / folder).mkdir()
    relay_port = free_port()
    with redis_server(tmp_path / "redis") as (url, _):
        env = base_env(tmp_path, LAMSON_REDIS_URL=url, LAMSON_RELAY_PORT=str(relay_port),
                       LAMSON_RECEIVER_PORT=str(free_port()))
        log = spawn([str(BIN / "lamson"), "log", "-foreground", "-host", "127.0.0.1", "-port", str(relay_port)],
                    cwd=root, env=env, log=tmp_path / "log.out")
        try:
            wait_port(relay_port, timeout=30)
            yield root, env
        finally:
            stop_process(log)


def test_the_applications_own_tests_pass_unchanged(listapp: tuple[Path, dict[str, str]]) -> None:
    root, env = listapp
    expected = test_functions(root)
    assert len(expected) == 14, expected  # the files were found and read
    # As nosetests found them: every *_tests.py under tests/ (pytest collects files it is given by name).
    files = sorted(str(p.relative_to(root)) for p in root.glob("tests/**/*_tests.py"))
    done = subprocess.run([str(BIN / "pytest"), "-q", "-rA", "-p", "no:cacheprovider", *files], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    passed = set(re.findall(r"^PASSED (\S+)", done.stdout, re.MULTILINE))
    assert passed == set(expected), out[-6000:]
