"""``lamson gen -project NAME -template osb|list``: a project made from an example application.

The examples run in place from a checkout (their paths lead to the checkout's
.venv); a generated copy must instead name this interpreter, carry none of the
state an example left behind while it ran, and pass its own tests as generated.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import base_env
from tests.support import BIN, REPO, run_lamson


@pytest.mark.parametrize("template", ["osb", "list"])
def test_a_project_from_an_example_names_this_python_and_passes_its_tests(template: str, tmp_path: Path) -> None:
    env = base_env(tmp_path)
    made = run_lamson("gen", "-project", "mine", "-template", template, cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr.decode()
    assert b"README.md" in made.stdout
    root = tmp_path / "mine"
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".conf", ".md", ".ini", "") and "__pycache__" not in path.parts:
            text = path.read_text(errors="replace")
            assert ".venv/bin" not in text or str(BIN) in text, f"{path}: a checkout-relative path is left"
            assert "../../.venv" not in text, path
    conf = (root / "deploy" / "supervisord.conf").read_text()
    assert f'PATH="{BIN}:' in conf
    assert f"{BIN}/lamson sendmail" in (root / "muttrc").read_text()
    for state in ("run", "logs"):
        assert sorted(p.name for p in (root / state).iterdir()) in ([], ["README.md"]), state
    assert (root / "README.md").read_text() == (REPO / "examples" / template / "README.md").read_text().replace(
        "../../.venv/bin/lamson", str(BIN / "lamson")).replace("../../.venv/bin/", f"{BIN}/")

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root, env=env,
                           capture_output=True, timeout=180)
    assert tests.returncode == 0, tests.stdout.decode()[-3000:] + tests.stderr.decode()[-2000:]
    assert b" passed" in tests.stdout


def test_an_unknown_template_is_refused_with_the_list(tmp_path: Path) -> None:
    result = run_lamson("gen", "-project", "mine", "-template", "blog", cwd=tmp_path, env=base_env(tmp_path))
    assert result.returncode == 2
    message = result.stderr.decode()
    assert "no template 'blog'" in message and "list" in message and "osb" in message
    assert not (tmp_path / "mine").exists()


def test_what_an_example_left_while_it_ran_is_not_copied(tmp_path: Path) -> None:
    """Mail, Redis data, logs and rendered pages in an example's state folders stay behind."""
    from lamson.cli.gen import copy_tree

    source = tmp_path / "example"
    for rel in ("app/handlers/post.py", "run/README.md", "run/queue/new/1.mail", "run/redis.pass",
                "logs/README.md", "logs/lamson.log", "app/data/README.md", "app/data/posts/a.html",
                "app/store/README.md", "app/store/owners.json", "app/__pycache__/x.pyc"):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(rel)
    written = copy_tree(source, tmp_path / "copy", {})
    assert sorted(p.relative_to(tmp_path / "copy").as_posix() for p in written) == [
        "app/data/README.md", "app/handlers/post.py", "app/store/README.md", "logs/README.md", "run/README.md"]


def test_a_generated_projects_tests_run_spam_filters_without_redis(tmp_path: Path) -> None:
    """The scaffold's config/testing.py keeps spam counts in memory, as it keeps conversation state."""
    env = base_env(tmp_path, LAMSON_REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    made = run_lamson("gen", "-project", "mine", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr.decode()
    root = tmp_path / "mine"
    (root / "app" / "handlers" / "guarded.py").write_text(
        "from config.settings import relay\n"
        "from lamson.router import route, stateless\n"
        "from lamson.spam import Filter, spam_filter\n\n\n"
        '@route("guarded@(host)")\n'
        "@stateless\n"
        '@spam_filter("run/spamdb", None, "run/spam")\n'
        "def START(message, host=None):\n"
        '    relay.deliver(message, To="owner@test.com")\n'
    )
    (root / "tests" / "handlers" / "test_guarded.py").write_text(
        "from lamson.router import Router\n"
        "from lamson.spam import Filter\n"
        "from lamson.testing import RouterConversation, make_message\n\n\n"
        "def test_trained_spam_is_kept_out(lamson_router):\n"
        '    Router.load(["app.handlers.guarded"])\n'
        '    spam = Filter("run/spamdb")\n'
        "    for n in range(5):\n"
        '        spam.train_spam(make_message("bad@x.test", "a@test.com", "CHEAP PILLS", f"buy cheap pills now {n}"))\n'
        '        spam.train_ham(make_message("me@x.test", "a@test.com", "lunch", f"see you at lunch {n}"))\n'
        '    client = RouterConversation("bad@x.test", "CHEAP PILLS")\n'
        "    client.begin()\n"
        '    assert client.say("guarded@test.com", "buy cheap pills now") is None\n'
        '    assert spam.classify(make_message("bad@x.test", "a@test.com", "CHEAP PILLS", "buy cheap pills now")) == "spam"\n'
    )
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root, env=env,
                           capture_output=True, timeout=180)
    assert tests.returncode == 0, tests.stdout.decode()[-3000:] + tests.stderr.decode()[-2000:]
    assert list((root / "run" / "spam" / "new").iterdir())
