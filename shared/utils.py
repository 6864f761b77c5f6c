"""Lamson 1.x's ``lamson.utils``: loading settings, a database, fake settings, pid files.

Built on :mod:`lamson.settings`, so a script that calls
``import_settings(True)`` gets exactly what every router worker gets: the
settings with Lamson's defaults and ``LAMSON_*`` overrides, then the boot
module run once. What 1.x used to start and daemonize its single server
(``start_server``, ``daemonize``, ``drop_priv``) is not here: supervisord
runs the pipeline's programs (``lamson start``), and the receiver drops
privileges itself (``receiver_user``).
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

from lamson import settings as lamson_settings

__all__ = [
    "DatabaseUnavailable",
    "check_for_pid",
    "configure_database",
    "import_settings",
    "make_fake_settings",
]

LOG = logging.getLogger("lamson.utils")

DB_EXTRA_HINT = "pip install 'lamson[db]'"


class DatabaseUnavailable(ImportError):
    """``configure_database`` was called but SQLAlchemy (the ``lamson[db]`` extra) is not installed."""


def import_settings(boot_also: bool, from_dir: str | os.PathLike[str] | None = None,
                    boot_module: str = "config.boot") -> ModuleType:
    """Load the application's settings and, with ``boot_also``, run its boot module.

    ``from_dir`` is the project root (default: ``LAMSON_ROOT`` or the current
    directory); the settings module is ``LAMSON_SETTINGS`` or
    ``config.settings``. The boot module runs once per process, however
    often this is called, because Python imports a module once. Returns
    the settings module, the same object as ``config.settings``.
    """
    module = lamson_settings.load(None, from_dir)
    if boot_also:
        lamson_settings.run_boot(module, boot_module)
    return module


def configure_database(config: dict[str, Any], also_create: bool = False) -> Any:
    """A SQLAlchemy session factory for ``database_config``, as the guide's boot uses it.

    ``config`` holds ``url`` (any SQLAlchemy URL; ``sqlite:///app/data/main.db``
    is relative to the project root, where every Lamson process runs), and
    optionally ``metadata`` (your tables' MetaData, needed by
    ``also_create=True``, which creates missing tables) and ``log_level``
    (for the ``sqlalchemy.engine`` logger). Returns a ``sessionmaker`` bound
    to the engine (``Session.kw["bind"]``). Each router worker process runs
    the boot, so each gets its own engine and connections.

    SQLAlchemy is an optional dependency: without it this raises
    :class:`DatabaseUnavailable` naming the package to install, instead of
    a bare ImportError deep in the boot.
    """
    try:
        import sqlalchemy
        from sqlalchemy.orm import sessionmaker
    except ImportError as exc:
        raise DatabaseUnavailable(
            f"lamson.utils.configure_database needs SQLAlchemy, which is not installed: {DB_EXTRA_HINT}"
        ) from exc
    if "url" not in config:
        raise ValueError("database_config needs a 'url', e.g. {'url': 'sqlite:///app/data/main.db'}")
    if "log_level" in config:
        logging.getLogger("sqlalchemy.engine").setLevel(config["log_level"])
    engine = sqlalchemy.create_engine(config["url"])
    metadata = config.get("metadata")
    if also_create:
        if metadata is None:
            raise ValueError("configure_database(also_create=True) needs database_config['metadata'] "
                             "(the MetaData of your tables)")
        metadata.create_all(engine)
    LOG.info("Database configured to use %s URL.", engine.url.render_as_string(hide_password=True))
    return sessionmaker(bind=engine)


def make_fake_settings(host: str = "127.0.0.1", port: int = 8825) -> ModuleType:
    """Settings for a process that only receives and keeps mail (1.x's logging server).

    A new module with Lamson's defaults, ``receiver_config`` at
    ``host:port``, a description-only ``receiver``, no relay, and the
    logging server's handlers listed (not loaded: nothing global changes).
    """
    from lamson.server import SMTPReceiver

    fake = ModuleType("settings")
    lamson_settings.apply_defaults(fake)
    values: dict[str, Any] = {
        "receiver_config": {"host": host, "port": int(port)},
        "receiver": SMTPReceiver(host, port),
        "relay": None,
        "handlers": ["lamson.handlers.log", "lamson.handlers.queue"],
    }
    vars(fake).update(values)
    return fake


def check_for_pid(pid: str | os.PathLike[str], force: bool) -> None:
    """Refuse to start when a live process owns the pid file; clear a stale one.

    ``force`` removes the file whoever owns it. Exits (SystemExit, status 1)
    with the reason when the process is alive and ``force`` is false, as
    Lamson 1.x did; unlike 1.x, a pid file whose process is gone (a crash,
    a reboot) no longer blocks the start.
    """
    from lamson.process import alive

    path = os.fspath(pid)
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        return
    running = text.isdigit() and alive(int(text))
    if running and not force:
        raise SystemExit(f"PID file {path} exists and process {text} is running; give -FORCE to start anyway.")
    os.unlink(path)
    LOG.info("removed %s pid file %s", "the" if force and running else "stale", path)
