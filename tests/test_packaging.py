"""What pip installs is the whole package: no subpackage, module or scaffold file left out of the wheel.

pyproject.toml maps the top-level folders into ``lamson`` and lists its packages by
hand; a new subpackage missing from that list would install without it, silently
(the editable install and these tests' imports would still find it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

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
