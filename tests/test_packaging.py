"""What pip installs is the whole package, and what the virtualenv holds is exactly the lock.

pyproject.toml maps the top-level folders into ``lamson`` and lists its packages by
hand; a new subpackage missing from that list would install without it, silently
(the editable install and these tests' imports would still find it).

requirements/ locks every dependency at the versions the suite passed with; scripts/setup
installs from it and records which lock in the virtualenv (.lamson-lock). A suite that ran on
other versions than the lock says would vouch for an install nobody gets, so it fails here,
naming the package, the locked and the installed version.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib.metadata import distributions
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

from tests.support import REPO

SCAFFOLD = REPO / "shared" / "scaffold"
EXAMPLES = REPO / "examples"
#: What an example leaves behind while it runs: not shipped (pyproject's exclude-package-data).
STATE = ("run", "logs", "app/data", "app/store")


def _example_state(path: Path) -> bool:
    rel = path.relative_to(EXAMPLES).as_posix().split("/", 1)[-1]
    return any(rel.startswith(f"{state}/") and rel != f"{state}/README.md" for state in STATE)


def _setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _expected_files() -> dict[str, Path]:
    """Every file of the package as it sits in a wheel (``lamson/router/routing.py``) -> its source file."""
    found: dict[str, Path] = {}
    for package, folder in _setuptools_config()["package-dir"].items():
        root = REPO / folder
        for path in root.rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            if path.is_relative_to(EXAMPLES):
                if _example_state(path) or ".pytest_cache" in path.parts:
                    continue
            elif not (path.suffix == ".py" or path.is_relative_to(SCAFFOLD) or path.name == "py.typed"):
                continue
            found["/".join([*package.split("."), *path.relative_to(root).parts])] = path
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = _setuptools_config()
    listed = set(config["packages"])
    missing = []
    for package, folder in config["package-dir"].items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            if init.is_relative_to(SCAFFOLD) or init.is_relative_to(EXAMPLES) or "__pycache__" in init.parts:
                continue  # the scaffold and the examples are package data: projects `lamson gen` copies
            name = ".".join([*package.split("."), *init.parent.relative_to(root).parts])
            if name not in listed:
                missing.append(f"{name} ({init.parent.relative_to(REPO)})")
    assert not missing, f"packages missing from [tool.setuptools] packages in pyproject.toml: {missing}"


def test_the_wheel_holds_every_module_the_scaffold_and_py_typed(tmp_path: Path) -> None:
    # Built from a copy: setuptools' build/lib in the checkout could carry files of an earlier build.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for folder in set(_setuptools_config()["package-dir"].values()):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # The state an example leaves in a checkout while it runs is excluded from the wheel: prove it.
    (source / "examples" / "osb" / "run" / "stray-mail").write_text("not shipped")
    out = tmp_path / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check", "-w", str(out),
         str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, f"pip wheel failed:\n{done.stdout}\n{done.stderr}"
    (wheel,) = out.glob("lamson-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = _expected_files()
    assert "lamson/py.typed" in expected and "lamson/scaffold/config/settings.py" in expected
    assert "lamson/examples/osb/README.md" in expected and "lamson/examples/list/deploy/supervisord.conf" in expected
    missing = sorted(name for name in expected if name not in names)
    assert not missing, f"not in the wheel: {missing}"
    assert "lamson/examples/osb/run/stray-mail" not in names
    assert "lamson/examples/osb/run/README.md" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") or name.endswith(".dist-info/LICENSE")
               for name in names), sorted(n for n in names if ".dist-info/" in n)


RUNTIME_LOCK = REPO / "requirements" / "lamson.txt"
TEST_LOCK = REPO / "requirements" / "test.txt"
#: Installed but never locked: the project itself and the installer (the venv's own pip).
UNLOCKED_ALLOWED = {"lamson", "pip", "wheel"}


def _norm(name: str) -> str:
    """PEP 503 names: a lock says ``markupsafe``, the installed metadata ``MarkupSafe``."""
    return re.sub(r"[-_.]+", "-", name).lower()


class Locked:
    """One lock entry: its requirement (``name==version ; marker``) and its hashes."""

    def __init__(self, line: str) -> None:
        requirement, *hashes = re.split(r"\s+--hash=", line.strip())
        self.requirement = Requirement(requirement)
        self.hashes = sorted(hashes)
        (spec,) = self.requirement.specifier  # exactly one: ==version
        assert spec.operator == "==", f"not an exact pin in the lock: {line.strip()}"
        self.version = spec.version

    def applies(self, environment: dict[str, str]) -> bool:
        marker = self.requirement.marker
        return marker is None or marker.evaluate(environment)


def _read_lock(path: Path) -> dict[str, Locked]:
    """The entries of a pip requirements lock (uv's format: continuation lines, comments, hashes).

    A package locked at two versions for different Pythons (``numpy==A ; python_full_version < '3.15'``
    and ``numpy==B ; python_full_version >= '3.15'``: a universal lock forks where a newer release drops
    an older Python) is the entry that applies to this interpreter.
    """
    entries: dict[str, Locked] = {}
    environment = default_environment()
    logical = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    for line in logical.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry = Locked(line)
        name = _norm(entry.requirement.name)
        if name not in entries or (entry.applies(environment) and not entries[name].applies(environment)):
            entries[name] = entry
    return entries


def _installed() -> dict[str, str]:
    """What this interpreter's environment holds (its site-packages only, not the checkout's egg-info)."""
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    return {_norm(dist.metadata["Name"]): dist.version for dist in distributions(path=paths)}


def _differences(lock: dict[str, Locked], lock_name: str, installed: dict[str, str],
                 environment: dict[str, str]) -> list[str]:
    """Every way ``installed`` is not the lock as it applies to ``environment``, one line each."""
    found = []
    for name, entry in sorted(lock.items()):
        if not entry.applies(environment):
            if name in installed:
                found.append(f"{name}: not for this Python ({entry.requirement.marker}) in {lock_name}, "
                             f"installed {installed[name]}")
            continue
        if name not in installed:
            found.append(f"{name}: locked {entry.version} in {lock_name}, not installed")
        elif installed[name] != entry.version:
            found.append(f"{name}: locked {entry.version} in {lock_name}, installed {installed[name]}")
    for name, version in sorted(installed.items()):
        if name not in lock and name not in UNLOCKED_ALLOWED:
            found.append(f"{name}: installed {version}, not in {lock_name}")
    return found


def test_the_virtualenv_holds_exactly_the_lock_it_was_installed_from() -> None:
    record = Path(sys.prefix) / ".lamson-lock"
    assert record.is_file(), (
        f"{sys.prefix} was not installed from a lock (no {record.name}): run bash scripts/setup --test")
    lock_name = record.read_text().strip()
    assert lock_name in ("requirements/lamson.txt", "requirements/test.txt"), lock_name
    differences = _differences(_read_lock(REPO / lock_name), lock_name, _installed(), default_environment())
    assert not differences, (
        "the virtualenv differs from the lock (run bash scripts/setup --test, or scripts/update-deps to "
        "move the lock):\n  " + "\n  ".join(differences))


def test_a_version_other_than_the_locked_one_is_named_with_both_versions() -> None:
    """The check above on the real lock and what is really installed, one version moved, one package added."""
    lock = _read_lock(TEST_LOCK)
    environment = default_environment()
    installed = {name: entry.version for name, entry in lock.items() if entry.applies(environment)}
    installed |= {"lamson": "2.0.0.dev0", "pip": "24.0"}
    assert _differences(lock, "requirements/test.txt", installed, environment) == []
    other = "5.0.0" if lock["redis"].version != "5.0.0" else "5.0.1"
    installed["redis"] = other
    installed["requests"] = "2.32.0"
    del installed["jinja2"]
    assert _differences(lock, "requirements/test.txt", installed, environment) == [
        f"jinja2: locked {lock['jinja2'].version} in requirements/test.txt, not installed",
        f"redis: locked {lock['redis'].version} in requirements/test.txt, installed {other}",
        "requests: installed 2.32.0, not in requirements/test.txt",
    ]


def test_the_lock_carries_markers_for_pythons_other_than_this_one() -> None:
    """Universal: Debian 12's Python 3.11.2 needs async-timeout for redis-py, 3.11.3 and later do not."""
    lock = _read_lock(RUNTIME_LOCK)
    debian = default_environment() | {"python_full_version": "3.11.2", "python_version": "3.11"}
    later = default_environment() | {"python_full_version": "3.12.4", "python_version": "3.12"}
    assert lock["async-timeout"].applies(debian)
    assert not lock["async-timeout"].applies(later)
    assert lock["redis"].applies(debian) and lock["redis"].applies(later)


def test_the_runtime_lock_is_the_test_lock_without_the_test_tools() -> None:
    """Both locks hold the same version (and files) of every package they share."""
    runtime, test = _read_lock(RUNTIME_LOCK), _read_lock(TEST_LOCK)
    missing = sorted(set(runtime) - set(test))
    assert not missing, f"in requirements/lamson.txt but not in requirements/test.txt: {missing}"
    # Versions and files, not markers: the runtime lock may need a package on fewer Pythons than the
    # test lock does (typing-extensions only below 3.15 for the runtime, everywhere for the test tools).
    differ = [f"{name}: {entry.requirement} vs {test[name].requirement}" for name, entry in runtime.items()
              if (entry.version, entry.hashes) != (test[name].version, test[name].hashes)]
    assert not differ, f"the runtime and the test lock disagree: {differ}"


def test_the_locks_satisfy_pyproject_and_have_hashes() -> None:
    """A dependency added to or moved in pyproject.toml without re-locking (scripts/update-deps) fails here."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]
    wanted = {RUNTIME_LOCK: runtime, TEST_LOCK: runtime + pyproject["project"]["optional-dependencies"]["test"]}
    problems = []
    for path, requirements in wanted.items():
        lock = _read_lock(path)
        for text in requirements:
            requirement = Requirement(text)
            entry = lock.get(_norm(requirement.name))
            if entry is None:
                problems.append(f"{path.name}: {requirement.name} is missing")
            elif not requirement.specifier.contains(entry.version, prereleases=True):
                problems.append(f"{path.name}: {requirement.name}=={entry.version} is outside {requirement}")
        problems += [f"{path.name}: {name} has no hash" for name, entry in lock.items() if not entry.hashes]
        assert "lamson" not in lock, f"{path.name} locks the project itself"
    assert not problems, "re-lock with bash scripts/update-deps --no-upgrade:\n  " + "\n  ".join(problems)
