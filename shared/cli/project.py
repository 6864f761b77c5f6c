"""Where a command finds the project it works on, and its settings-derived defaults.

Commands such as ``send`` or ``log`` are useful outside a project too (the
guide uses ``lamson send`` against any SMTP server), so their defaults come
from ``config/settings.py`` when the project has one and from
:data:`lamson.settings.DEFAULTS` otherwise, with the same LAMSON_* environment
overrides either way.
"""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lamson import settings as lsettings


def has_settings(config: str | None = None, root: str | None = None) -> bool:
    """True when a settings module was named, or the project root has config/settings.py."""
    if config or os.environ.get("LAMSON_SETTINGS"):
        return True
    return (lsettings.app_root(root) / "config" / "settings.py").is_file()


def settings_or_defaults(config: str | None = None, root: str | None = None) -> Any:
    """The loaded settings module, or DEFAULTS (with environment overrides) outside a project."""
    if has_settings(config, root):
        return lsettings.load(config, root)
    conf = SimpleNamespace(**copy.deepcopy(lsettings.DEFAULTS))
    lsettings.apply_environment(conf, os.environ)
    lsettings.validate(conf)
    lsettings.apply_credentials(conf, root_path(root))
    return conf


def root_path(root: str | None = None) -> Path:
    """The project root as an absolute path."""
    return lsettings.project_root(root)


def accepting(host: str, port: int) -> bool:
    """True if something accepts TCP connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False



def root_from_deploy(directory: Path) -> Path | None:
    """The application directory ``deploy/supervisord.conf`` here runs (see lamson.settings)."""
    return lsettings.root_from_deploy(directory)
