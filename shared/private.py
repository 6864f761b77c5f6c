"""Every program keeps ``run/`` and ``logs/`` to its user, whoever started it and how.

deploy/supervisord.conf says ``umask=077``, and ``lamson start`` passes it, but
``supervisord -n`` (how systemd units and containers run it) does not apply the
config's umask: in a fresh clone the program logs came out 0644 in a 0755
``logs/``, readable by every local user, with envelope addresses in them, and
``run/`` holds the spool (whole messages) and ``run/redis.pass`` (issue 21,
finding 10). So each program, as it starts, calls :func:`keep_private`:

* its own umask becomes 077: every file it makes is 0600, every folder 0700;
* ``run_dir`` and ``log_dir`` are made 0700 (created so if missing), which
  also closes the files supervisord already made in them to everyone else;
* the files directly in ``run_dir`` and ``log_dir`` that this user owns (the
  logs and the pid file supervisord made with its own umask) lose their group
  and other bits.

Folders or files owned by another user are left alone (chmod would fail, and
they are that user's to set); a failure to tighten is a WARNING, never a reason
not to start. docs/security.md, "Files and permissions".
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

log = logging.getLogger("lamson")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def _tighten(path: Path, mode: int) -> None:
    try:
        info = path.lstat()
        if info.st_uid != os.geteuid() or stat.S_ISLNK(info.st_mode):
            return
        if stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(info.st_mode) & mode)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("WARNING: cannot make %s private (%s)", path, exc)


def keep_private(settings: Any = None, *, run_dir: str | os.PathLike[str] | None = None,
                 log_dir: str | os.PathLike[str] | None = None) -> None:
    """Umask 077 for this process; ``run_dir`` and ``log_dir`` (the settings', or those given) 0700,
    and the files directly in them 0600. Relative paths are the current directory's, as every
    stage reads them."""
    os.umask(0o077)
    runs = run_dir if run_dir is not None else getattr(settings, "run_dir", "run")
    logs = log_dir if log_dir is not None else getattr(settings, "log_dir", "logs")
    for folder in (Path(runs), Path(logs)):
        try:
            folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("WARNING: cannot create %s (%s)", folder, exc)
            continue
        _tighten(folder, PRIVATE_DIR)
    for folder in (Path(runs), Path(logs)):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                _tighten(Path(entry.path), PRIVATE_FILE)
