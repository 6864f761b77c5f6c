"""``lamson status`` and ``/health`` tell the truth: a RUNNING router that cannot load its handlers is not well.

The real deploy/supervisord.conf runs a copy of the demo on free ports (as
tests/e2e/conftest.py does), whose handler module has a syntax error from the
start: supervisord shows every program RUNNING, and the status command and
the exporter's health endpoint must still say that nothing is routed, name
the error, and be well again once the file is fixed.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamson.cli.control import STATUS_CANNOT_ROUTE, STATUS_CODES, STATUS_OK, STATUS_PROGRAM_DOWN
from tests.e2e.conftest import Pipeline, deploy_tree
from tests.support import BIN, REPO, supervised, wait_for, wait_port

SYNTAX_ERROR = "\ndef broken(:\n"


@pytest.fixture
def broken(tmp_path: Path) -> Iterator[Pipeline]:
    """The pipeline of eight programs, started with app/handlers/sample.py unimportable (boot_retry = 1)."""
    root, env, ports = deploy_tree(tmp_path)
    demo = root / "examples" / "demo"
    sample = demo / "app" / "handlers" / "sample.py"
    sample.write_text(sample.read_text() + SYNTAX_ERROR)
    settings = demo / "config" / "settings.py"
    settings.write_text(settings.read_text() + "\nboot_retry = 1\n")
    with supervised(root, env, 8, (ports["redis"], ports["receiver"], ports["relay"], ports["metrics"])):
        yield Pipeline(root, env, ports)


def status(p: Pipeline) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "lamson"), "status"], cwd=p.root, env=p.env, capture_output=True, text=True,
                          timeout=60)


def health(p: Pipeline) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{p.ports['metrics']}/health", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_status_and_health_name_a_handler_that_fails_to_import_until_it_is_fixed(broken: Pipeline) -> None:
    p = broken
    # Every program RUNNING, as supervisord sees it: the router workers wait to try their import again.
    assert p.ctl("status").count("RUNNING") == 8

    def reported() -> subprocess.CompletedProcess[str] | None:
        found = status(p)
        return found if found.stdout.count("application failed to load: SyntaxError") == 2 else None

    # `lamson wait` (README command 1's second half) does not wait out its timeout: it names the failure.
    waited = subprocess.run([str(BIN / "lamson"), "wait", "-timeout", "90"], cwd=p.root, env=p.env,
                            capture_output=True, text=True, timeout=120)
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert "the application cannot route after" in waited.stderr and "SyntaxError" in waited.stderr

    failing = wait_for(reported, 60, 0.5, "both router workers' reports in lamson status")
    assert failing.returncode == STATUS_CANNOT_ROUTE == 4, failing.stdout + failing.stderr
    assert "application: CANNOT ROUTE" in failing.stdout
    assert "sample.py" in failing.stdout  # the error names the file to fix
    assert "no router worker is alive" in failing.stdout
    code, body = health(p)
    assert code == 503 and body["status"] == "unhealthy" and body["redis"] is True
    assert len(body["load_failures"]) == 2
    assert all(e.startswith("SyntaxError") for e in body["load_failures"].values())

    # The operator fixes the file; the same processes load it at their next try (boot_retry = 1).
    sample = p.root / "examples" / "demo" / "app" / "handlers" / "sample.py"
    sample.write_text(sample.read_text().replace(SYNTAX_ERROR, ""))
    well = wait_for(lambda: (found := status(p)).returncode == STATUS_OK and found, 60, 0.5, "lamson status 0")
    assert "application: routing (2 router workers, 1 relay worker alive)" in well.stdout, well.stdout
    assert "failed to load" not in well.stdout
    code, body = health(p)
    assert code == 200, body
    assert body == {"status": "ok", "namespace": "lamson", "redis": True, "workers": {"relay": 1, "router": 2},
                    "load_failures": {}, "problems": []}

    # A program that should run and does not: 1, whatever the application's health.
    p.ctl("stop", "log", check=True)
    down = status(p)
    assert down.returncode == STATUS_PROGRAM_DOWN == 1, down.stdout
    assert "application: routing" in down.stdout
    p.ctl("start", "log", check=True)
    wait_port(p.ports["relay"], timeout=30)
    assert status(p).returncode == STATUS_OK


def test_status_help_and_the_docs_say_the_same_exit_codes() -> None:
    shown = subprocess.run([str(BIN / "lamson"), "status", "-h"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and " ".join(STATUS_CODES.split()) in " ".join(shown.stdout.split())
    for doc in ("docs/operations.md", "docs/cli.md"):
        text = " ".join((REPO / doc).read_text().split())
        assert " ".join(STATUS_CODES.split()) in text, f"{doc} does not give lamson status -h's exit codes"
