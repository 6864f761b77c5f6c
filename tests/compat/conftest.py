"""A project written as the guide and the Lamson 1.x documentation show it, booted in-process.

``guide_project`` writes ``config/`` and ``app/`` into a scratch directory,
makes it the current directory and gives back a function that writes more
files. Everything a boot changes in this process (the modules ``config`` and
``app``, ``sys.path``, the Router, ``view.LOADER``, the SQLAlchemy logger
level) is put back afterwards, so other tests see a clean process.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lamson import view
from lamson.router import Router

#: The guide's config/settings.py (ports are filled in per test run).
SETTINGS = '''\
from app.model import table
import logging

relay_config = {'host': 'localhost', 'port': %(relay_port)d}

receiver_config = {'host': 'localhost', 'port': %(receiver_port)d}

database_config = {
    "metadata": table.metadata,
    "url": 'sqlite:///app/data/main.db',
    "log_level": logging.DEBUG
}

handlers = ['app.handlers.sample']

router_defaults = {'host': 'test\\\\.com'}

template_config = {'dir': 'app', 'module': 'templates'}
'''

#: The guide's config/boot.py, line for line (its logging.config.fileConfig line is
#: left out: it would reconfigure this test process's logging).
BOOT = '''\
from config import settings
from lamson.routing import Router
from lamson.server import Relay, SMTPReceiver
from lamson.utils import configure_database
from lamson import view
import logging
import logging.config
import jinja2

# the relay host to actually send the final message to
settings.relay = Relay(host=settings.relay_config['host'], port=settings.relay_config['port'], debug=1)

# where to listen for incoming messages
settings.receiver = SMTPReceiver(settings.receiver_config['host'], settings.receiver_config['port'])

settings.database = configure_database(settings.database_config, also_create=False)

Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = True

view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config['dir'], settings.template_config['module']))
'''

#: Lamson 1.x's generated config/testing.py: no receiver, exceptions raised.
TESTING = '''\
from config import settings
from lamson import view
from lamson.routing import Router
from lamson.server import Relay
from lamson.utils import configure_database
import jinja2
import logging

settings.relay = Relay(host=settings.relay_config['host'], port=settings.relay_config['port'], debug=0)
settings.receiver = None
settings.database = configure_database(settings.database_config, also_create=True)

Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = True
Router.LOG_EXCEPTIONS = False

view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config['dir'], settings.template_config['module']))
'''

#: app/model/table.py: the tables the guide's settings import (SQLAlchemy 2 spelling).
TABLE = '''\
from sqlalchemy import Column, Integer, MetaData, String, Table

metadata = MetaData()

subscribers = Table(
    "subscribers", metadata,
    Column("id", Integer, primary_key=True),
    Column("address", String(200), nullable=False),
)
'''

#: The guide's handler, as 1.x's generated app/handlers/sample.py reads.
SAMPLE = '''\
import logging
from lamson.routing import route, route_like, stateless
from config.settings import relay, database
from lamson import view


@route("(address)@(host)", address=".+")
def START(message, address=None, host=None):
    relay.deliver(view.respond(locals(), "welcome.txt",
                               From="noreply@%(host)s",
                               To=message['from'],
                               Subject="Welcome to %(host)s"))
    return NEW_USER


@route_like(START)
def NEW_USER(message, address=None, host=None):
    return NEW_USER


@route_like(START)
def END(message, address=None, host=None):
    return NEW_USER(message, address, host)


@route_like(START)
@stateless
def FORWARD(message, address=None, host=None):
    logging.debug("stateless FORWARD saw a message to %s@%s", address, host)
'''

WELCOME = "Hello {{ address }}, welcome to {{ host }}.\n"

MODULE_PREFIXES = ("config", "app")


def _project_modules() -> list[str]:
    return [name for name in sys.modules if name.split(".")[0] in MODULE_PREFIXES]


@pytest.fixture
def guide_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], Path]]:
    """Write the guide's project into ``tmp_path`` (the current directory); yield ``write(path, text)``."""
    clashing = {name: sys.modules.pop(name) for name in _project_modules()}
    saved_path = list(sys.path)
    saved_router = dict(vars(Router))
    saved_loader = view.LOADER
    sa_logger = logging.getLogger("sqlalchemy.engine")
    saved_level = sa_logger.level
    for var in ("LAMSON_SETTINGS", "LAMSON_ROOT", "LAMSON_BOOT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    Router.__init__()  # type: ignore[misc]

    def write(relative: str, text: str) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    for package in ("config", "app", "app/model", "app/handlers"):
        write(f"{package}/__init__.py", "")
    write("config/settings.py", SETTINGS % {"relay_port": 8825, "receiver_port": 8823})
    write("config/boot.py", BOOT)
    write("config/testing.py", TESTING)
    write("app/model/table.py", TABLE)
    write("app/handlers/sample.py", SAMPLE)
    write("app/templates/welcome.txt", WELCOME)
    (tmp_path / "app/data").mkdir()
    for folder in ("run", "logs"):
        (tmp_path / folder).mkdir()
    try:
        yield write
    finally:
        for name in _project_modules():
            del sys.modules[name]
        sys.modules.update(clashing)
        sys.path[:] = saved_path
        vars(Router).clear()
        vars(Router).update(saved_router)
        view.LOADER = saved_loader
        sa_logger.setLevel(saved_level)
