"""The real deploy/supervisord.conf, run in a copy of the repository layout on free ports."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamson.connection import with_credentials
from tests.support import REPO, Supervised, free_port, pipeline_env, supervised


class Pipeline(Supervised):
    """A running supervisord with every Lamson program, and how to reach them."""

    def __init__(self, root: Path, env: dict[str, str], ports: dict[str, int]) -> None:
        super().__init__(root, env)
        self.ports = ports

    @property
    def redis_url(self) -> str:
        """The embedded Redis's URL with the password it generated into run/redis.pass (its default)."""
        return with_credentials(f"redis://127.0.0.1:{self.ports['redis']}/0", self.root / "run")


def deploy_tree(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, int]]:
    """A copy of the repository's deploy/ and examples/ (the layout README command 1 runs) on free ports:
    its root, the environment that moves the programs to the ports, and the ports."""
    root = tmp_path / "lamson"
    shutil.copytree(REPO / "deploy", root / "deploy")
    shutil.copytree(REPO / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__", "run", "logs"))
    (root / "run").mkdir()
    (root / "logs").mkdir()
    ports = {"redis": free_port(), "receiver": free_port(), "relay": free_port(), "metrics": free_port()}
    return root, pipeline_env(ports), ports


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    root, env, ports = deploy_tree(tmp_path)
    with supervised(root, env, 8, (ports["redis"], ports["receiver"], ports["relay"])):
        yield Pipeline(root, env, ports)
