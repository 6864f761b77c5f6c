"""A boot module that calls logging.config.fileConfig (as the guide's does) keeps Lamson's loggers alive.

Runs in a fresh Python process: fileConfig replaces the whole logging setup,
which must not happen inside the test runner.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LOGGING_CONF = """\
[loggers]
keys=root

[handlers]
keys=file

[formatters]
keys=plain

[logger_root]
level=DEBUG
handlers=file

[handler_file]
class=FileHandler
level=DEBUG
formatter=plain
args=('{log}',)

[formatter_plain]
format=%(name)s %(levelname)s %(message)s
"""

SCRIPT = """\
import logging, sys
from lamson import settings as lsettings

early = logging.getLogger("lamson.workers")      # exists before the boot, as in a worker
early_rq = logging.getLogger("rq.worker")
settings = lsettings.load("config.settings", sys.argv[1])
if sys.argv[2] == "run_boot":
    lsettings.run_boot(settings)
else:
    import config.boot                              # what run_boot did before the fix
early.info("from lamson.workers")
early_rq.info("from rq.worker")
logging.getLogger("app.handlers.sample").info("from a handler")
print(early.disabled, early_rq.disabled)
"""


def run(tmp_path: Path, how: str) -> tuple[str, str]:
    project = tmp_path / how
    (project / "config").mkdir(parents=True)
    (project / "config" / "__init__.py").touch()
    (project / "config" / "settings.py").write_text("handlers = []\n")
    log = project / "lamson.log"
    (project / "config" / "logging.conf").write_text(LOGGING_CONF.format(log=log))
    (project / "config" / "boot.py").write_text(
        "import logging.config\nfrom pathlib import Path\n"
        "logging.config.fileConfig(Path(__file__).parent / 'logging.conf')\n"
    )
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(project), how], cwd=project, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), log.read_text()


def test_run_boot_keeps_existing_loggers_enabled(tmp_path: Path) -> None:
    flags, logged = run(tmp_path, "run_boot")
    assert flags == "False False"
    assert "lamson.workers INFO from lamson.workers" in logged  # through the boot's own handler
    assert "rq.worker INFO from rq.worker" in logged
    assert "app.handlers.sample INFO from a handler" in logged


def test_without_it_file_config_mutes_them(tmp_path: Path) -> None:
    """The control: the same boot imported directly silences the loggers that existed before it."""
    flags, logged = run(tmp_path, "import")
    assert flags == "True True"
    assert "from lamson.workers" not in logged and "app.handlers.sample INFO from a handler" in logged
