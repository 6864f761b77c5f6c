"""Boot of the queue worker (the `queue` program; `lamson start -boot config.queue` by hand).

The same settings and templates as config/boot.py, but the router loads
queue_handlers (app.handlers.index) and serves the queue_config Maildir,
where the router workers push "rebuild the index" notes.
"""

import jinja2

from config import settings
from lamson import view
from lamson.relay import Relay
from lamson.router import Router
from lamson.server import QueueReceiver

settings.relay = Relay(host=settings.relay_config["host"], port=settings.relay_config["port"],
                       redis_url=settings.redis_url)
settings.receiver = QueueReceiver(settings.queue_config["queue"], settings.queue_config["sleep"])

view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config["dir"], settings.template_config["module"]),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=False),
    keep_trailing_newline=True,
)

Router.defaults(**settings.router_defaults)
Router.load(settings.queue_handlers)
