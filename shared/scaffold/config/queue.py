"""Boot of the queue processor (the guide's config/queue.py): `lamson start -boot config.queue`.

It runs in its own worker process (the `queue` program of deploy/supervisord.conf):
the same settings, but the router loads queue_handlers, and settings.receiver
names the Maildir queue to serve.
"""

from config import settings
from lamson.relay import Relay
from lamson.router import Router
from lamson.server import QueueReceiver

settings.relay = Relay(host=settings.relay_config["host"], port=settings.relay_config["port"])
settings.receiver = QueueReceiver(settings.queue_config["queue"], settings.queue_config["sleep"])

Router.defaults(**settings.router_defaults)
Router.load(settings.queue_handlers)
