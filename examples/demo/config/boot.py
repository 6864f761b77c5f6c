"""Turn the demo's settings into services on ``config.settings`` (router workers run this)."""

import jinja2

from config import settings
from lamson import view
from lamson.receiver import SMTPReceiver
from lamson.relay import Relay
from lamson.router import Router

# The relay host to send replies to (handlers enqueue; the relay worker delivers).
settings.relay = Relay(host=settings.relay_config["host"], port=settings.relay_config["port"],
                       redis_url=settings.redis_url)

# Where the receiver process listens (it runs separately under supervisord).
settings.receiver = SMTPReceiver(settings.receiver_config["host"], settings.receiver_config["port"])

Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = False

view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config["dir"], settings.template_config["module"]),
    autoescape=False,
)
