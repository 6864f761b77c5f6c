import logging

import jinja2

from config import settings
from lamson import queue, view
from lamson.confirm import ConfirmationEngine, ConfirmationStorage
from lamson.routing import Router
from lamson.server import Relay, SMTPReceiver

logging.basicConfig(filename="logs/lamson.log", level=logging.DEBUG)

# the relay host to actually send the final message to
settings.relay = Relay(host=settings.relay_config['host'], port=settings.relay_config['port'], debug=1)

# where to listen for incoming messages
settings.receiver = SMTPReceiver(settings.receiver_config['host'], settings.receiver_config['port'])

# subscriptions wait here until the subscriber answers the confirmation
settings.confirm = ConfirmationEngine(settings.pending_dir, ConfirmationStorage())

Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = True
Router.UNDELIVERABLE_QUEUE = queue.Queue("run/undeliverable")

view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config['dir'], settings.template_config['module']))
