"""config/boot.py for tests: the same services, but no servers and no Redis.

tests/conftest.py imports this module once. The Router keeps conversation
state in memory and settings.relay is a CapturingRelay, so what handlers send
can be checked with lamson.testing.delivered() / queue().
"""

from pathlib import Path

import jinja2

from lamson import settings as lamson_settings
from lamson import view
from lamson.receiver import SMTPReceiver
from lamson.router import LocalLocks, MemoryStorage, Router
from lamson.testing import CapturingRelay

settings = lamson_settings.load("config.settings", Path(__file__).resolve().parent.parent)

settings.relay = CapturingRelay(host=settings.relay_config["host"], port=settings.relay_config["port"])
settings.receiver = SMTPReceiver(settings.receiver_config["host"], settings.receiver_config["port"])

Router.STATE_STORE = MemoryStorage()
Router.LOCKS = LocalLocks()
Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = False

view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config["dir"], settings.template_config["module"]),
    autoescape=False,
    keep_trailing_newline=True,
)
