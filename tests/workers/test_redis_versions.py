"""The rq contract and prompt stops hold with every redis-py line the pins allow, not only the locked one.

pyproject.toml allows ``redis>=5.0.1,<8.3`` (rq 3.0 needs 5.0.1); the lock
installs one version, on which the whole suite runs. A user who installs
Lamson beside other packages may get any allowed version, and redis-py's
internals move between minors (8.2 made an idle rq worker take 60 s+ to
stop). So the contract tests of lamson.rqcompat and the stop tests of real
worker processes run again here, in a subprocess whose ``redis`` package is
another version, installed with pip into a side folder (``--target``, hash
checked, no other package touched) and put first on ``PYTHONPATH``.

A new redis-py minor: add its wheel's hash below, raise the pin's upper
bound, and this test says whether Lamson works with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

#: One line per redis-py minor series the pins allow (the lowest allowed version and each line's latest),
#: with what that version needs beyond what the lock installs. The locked version runs the whole suite.
VERSIONS: dict[str, list[str]] = {
    "5.0.1": ["redis==5.0.1 --hash=sha256:ed4802971884ae19d640775ba3b03aa2e7bd5e8fb8dfaed2decce4d0fc48391f"],
    "5.3.1": ["redis==5.3.1 --hash=sha256:dc1909bd24669cc31b5f67a039700b16ec30571096c5f1f0d9d2324bff31af97",
              # 5.3 imports PyJWT unconditionally (its Entra ID token support)
              "pyjwt==2.15.1 --hash=sha256:42d59d631f7768a1028a64c7ff581a9bf7519804daf91fc5b6c56e30eec5e193"],
    "6.4.0": ["redis==6.4.0 --hash=sha256:f0544fa9604264e9464cdf4814e7d4830f74b165d52f2a330a760a88dd248b7f"],
    "7.4.1": ["redis==7.4.1 --hash=sha256:1fa4647af1c5e93a2c685aa248ee44cce092691146d41390518dabe9a99839b0"],
    "8.0.1": ["redis==8.0.1 --hash=sha256:47daa35a058c23468d6437f17a8c76882cb316b838ef763036af99b96cedd743"],
    "8.1.0": ["redis==8.1.0 --hash=sha256:a4fe1aac3d3b3cc791d4b3d5931c5a956045dc951ee74d1c913ee3ac4d2ee9fb"],
}

#: What runs under each version: everything Lamson asks of rq (and so of redis-py's pub/sub, pipelines and
#: scripts under rq), and real `lamson worker` / `lamson relay` processes stopped by SIGTERM.
CONTRACT = ["tests/shared/test_rqcompat.py", "tests/workers/test_stop.py"]


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_the_rq_contract_and_stops_hold_with_redis_py(version: str, tmp_path: Path) -> None:
    side = tmp_path / f"redis-py-{version}"
    wanted = tmp_path / "requirements.txt"
    wanted.write_text("\n".join(VERSIONS[version]) + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--only-binary=:all:", "--require-hashes", "--target", str(side), "-r", str(wanted)],
        capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, f"pip could not install redis-py {version}:\n{installed.stderr}"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "LAMSON_"))}
    env["LAMSON_AUTH_RESULTS"] = "0"
    env["PYTHONPATH"] = os.pathsep.join([str(side), str(REPO)])
    seen = subprocess.run([sys.executable, "-c", "import redis; print(redis.__version__)"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert seen.stdout.strip() == version, seen.stdout + seen.stderr

    ran = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q", "-s",
                          "--basetemp", str(tmp_path / "run"), *CONTRACT],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    stops = [line for line in ran.stdout.splitlines() if "after SIGTERM" in line]
    print(f"redis-py {version}:", *stops, sep="\n  ")
    assert ran.returncode == 0, f"with redis-py {version}:\n{ran.stdout[-6000:]}\n{ran.stderr[-2000:]}"
    assert len(stops) == 2 and all(f"redis-py {version}" in line for line in stops), ran.stdout[-3000:]
