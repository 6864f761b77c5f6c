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


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    root = tmp_path / "lamson"
    shutil.copytree(REPO / "deploy", root / "deploy")
    shutil.copytree(REPO / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__", "run", "logs"))
    (root / "run").mkdir()
    (root / "logs").mkdir()
    ports = {"redis": free_port(), "receiver": free_port(), "relay": free_port(), "metrics": free_port()}
    env = pipeline_env(ports)
    with supervised(root, env, 7, (ports["redis"], ports["receiver"], ports["relay"])):
        yield Pipeline(root, env, ports)
