"""Workers yield the CPU to the receiver (worker_nice)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import os, types
from lamson import workerbase
before = os.nice(0)
workerbase.lower_priority(types.SimpleNamespace(worker_nice={nice!r}))
print(os.nice(0) - before)
"""


@pytest.mark.parametrize(("nice", "lowered"), [(5, 5), (0, 0), (None, 0)])
def test_a_worker_lowers_its_priority_by_worker_nice(nice: int | None, lowered: int) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE.format(nice=nice)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert int(out) == lowered
