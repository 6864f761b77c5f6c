"""``lamson check`` warns when lamson web would listen beyond this machine (docs/web.md, "Safe by default")."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import BIN
from tests.web.conftest import new_project, web_env


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "lamson"), "check", "-offline"], cwd=root, env=web_env(),
                          capture_output=True, text=True, timeout=120)


def test_check_is_quiet_about_loopback_and_warns_about_an_exposed_web(tmp_path: Path) -> None:
    quiet = new_project(tmp_path / "quiet", "redis://127.0.0.1:1/0")
    out = check(quiet.root)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "web_config" not in out.stdout

    exposed = new_project(tmp_path / "exposed", "redis://127.0.0.1:1/0",
                          extra='web_config = {"host": "0.0.0.0", "port": 8880}\n')
    out = check(exposed.root)
    assert "web_config" in out.stdout and "no web_password" in out.stdout, out.stdout
    assert "warning" in out.stdout

    guarded = new_project(tmp_path / "guarded", "redis://127.0.0.1:1/0",
                          extra='web_config = {"host": "0.0.0.0", "port": 8880}\nweb_password = "s3cret-enough"\n')
    out = check(guarded.root)
    assert "web_config" in out.stdout and "behind a password" in out.stdout, out.stdout
