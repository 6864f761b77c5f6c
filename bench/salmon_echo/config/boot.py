"""Boot module read by ``salmon start``: the relay, the receiver and the routes.

Logging stays at WARNING, so Salmon's side measures mail handling alone. The
Lamson side runs its shipped configuration (INFO: a line a message in the
receiver, a router and the relay) unless the bench is given --log-level
WARNING, so the ratios to Salmon lean in Salmon's favour (README, Performance).
"""

import logging

from salmon import routing
from salmon.server import Relay, SMTPReceiver

from config import settings

logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")

settings.relay = Relay(host=settings.relay_config["host"], port=settings.relay_config["port"])
settings.receiver = SMTPReceiver(settings.receiver_config["host"], settings.receiver_config["port"])

routing.Router.defaults(**settings.router_defaults)
routing.Router.load(settings.handlers)
routing.Router.RELOAD = False
routing.Router.LOG_EXCEPTIONS = True
