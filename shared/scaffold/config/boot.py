"""Turn the settings into services on config.settings (every router worker runs this).

Handlers reach the services with ``from config.settings import relay``. Add
your own services here (a database, a spam filter, ...); change
config/testing.py the same way so tests get a stand-in.
"""

from pathlib import Path

import jinja2

from lamson import settings as lamson_settings
from lamson import view
from lamson.receiver import SMTPReceiver
from lamson.relay import Relay
from lamson.router import Router

# The settings with Lamson's defaults and the LAMSON_* environment overrides applied.
settings = lamson_settings.load("config.settings", Path(__file__).resolve().parent.parent)

# Where replies go: handlers call relay.deliver(), which enqueues the message
# for the relay worker; the relay worker delivers it to relay_config.
settings.relay = Relay(host=settings.relay_config["host"], port=settings.relay_config["port"],
                       redis_url=settings.redis_url)

# Where incoming mail arrives. The receiver is its own process (`lamson receiver`,
# run by `lamson start`); this only records its address for your code.
settings.receiver = SMTPReceiver(settings.receiver_config["host"], settings.receiver_config["port"])

# Routing: default capture patterns, then the handlers. RELOAD re-imports a
# handler module whose file changed, so edits need no restart in development;
# set it to False in production.
Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = True

# Templates for lamson.view: Jinja2 from the app/templates package folder.
view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config["dir"], settings.template_config["module"]),
    autoescape=False,
    keep_trailing_newline=True,
)
