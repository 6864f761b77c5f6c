"""The generated project's boot: HTML autoescaping, RELOAD only for development, -config honoured,
and its tests — plus a test module written the Lamson 1.x way — passing as generated.

Each check runs in a fresh Python process in the project, as a worker or pytest would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import base_env
from tests.support import run_lamson

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    result = run_lamson("gen", "-project", "app1", cwd=tmp_path, env=base_env(tmp_path))
    assert result.returncode == 0, result.stderr.decode()
    return tmp_path / "app1"


def python(project: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=project, env=base_env(project.parent, **env),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("boot", ["config.boot", "config.testing"])
def test_html_templates_are_autoescaped_text_templates_are_not(project: Path, boot: str) -> None:
    templates = project / "app" / "templates"
    (templates / "card.html").write_text("<p>Hello {{ name }}</p>\n")
    (templates / "card.txt").write_text("Hello {{ name }}\n")
    result = python(project, f"import {boot}\nfrom lamson import view\n"
                             f"print(view.render({{'name': {EVIL!r}}}, 'card.html'), end='')\n"
                             f"print(view.render({{'name': {EVIL!r}}}, 'card.txt'), end='')\n")
    assert result.returncode == 0, result.stderr
    html, text = result.stdout.splitlines()
    assert html == "<p>Hello &lt;img src=x onerror=alert(1)&gt;</p>"
    assert text == f"Hello {EVIL}"


def test_reload_is_a_development_setting(project: Path) -> None:
    code = "import config.boot\nfrom lamson.router import Router\nprint(Router.RELOAD)"
    assert python(project, code).stdout.strip() == "False"
    assert python(project, code, LAMSON_RELOAD="1").stdout.strip() == "True"
    deploy = (project / "deploy" / "supervisord.conf").read_text()
    assert "LAMSON_RELOAD" not in deploy and "reload" not in deploy.lower()


def test_boot_honours_config(project: Path, tmp_path: Path) -> None:
    (project / "config" / "production.py").write_text(
        "from config.settings import *  # noqa: F403 - the usual way to derive settings\n"
        'router_defaults = {"host": r"example\\.org"}\n'
    )
    env = base_env(tmp_path)
    default = run_lamson("routes", "-test", "hello@example.org", cwd=project, env=env)
    assert default.returncode == 1  # config.settings serves test.com only
    for argv in (["-config", "config.production"], ["--config=config.production"]):
        chosen = run_lamson("routes", *argv, "-test", "hello@example.org", cwd=project, env=env)
        # The sample handler's `from config.settings import relay` found the chosen settings' relay.
        assert chosen.returncode == 0, chosen.stderr.decode()
        assert b"example\\\\.org" in chosen.stdout
    by_env = run_lamson("routes", "-test", "hello@example.org", cwd=project,
                        env=base_env(tmp_path, LAMSON_SETTINGS="config.production"))
    assert by_env.returncode == 0, by_env.stderr.decode()


GUIDE_STYLE_TEST = '''\
from lamson.testing import *
from lamson import view

relay = relay(port=8823)
client = RouterConversation("somedude@localhost", "requests_tests")


def test_forwards_relay_host():
    client.begin()
    client.say("hello@test.com", "Test that forward works.", "somedude@localhost")
    assert_in_state("app.handlers.sample", "hello@test.com", "somedude@localhost", "GREETED")


def test_drops_open_relay_messages():
    client.begin()
    client.say("tester@badplace.notinterwebs", "Relay should not happen")
    assert queue().count() == 0, "You are configured currently to accept everything."


def test_second_message():
    client.begin()
    client.say("hello@test.com", "One.")
    msg = client.say("hello@test.com", "Two.", "somedude@")
    assert "Hello again" in msg.body()
    assert delivered("Welcome!")
    assert not delivered("nothing like this")


def test_spelling():
    contents = view.render({"sender": "you", "subject": "Hi"}, "again.txt")
    assert spelling("again.txt", "Thank you for writing to us, we will answer soon.")
    assert not spelling("again.txt", contents + " recieved")
'''


def test_generated_tests_and_a_guide_style_test_pass(project: Path) -> None:
    (project / "tests" / "handlers" / "test_guide_style.py").write_text(GUIDE_STYLE_TEST)
    (project / "run" / "queue" / "new").mkdir(parents=True)  # as `lamson log` leaves it
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-W", "error::pytest.PytestCollectionWarning"],
                            cwd=project, env=base_env(project.parent), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 passed" in result.stdout
