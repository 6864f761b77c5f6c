import jinja2

from config import settings
from lamson import view
from lamson.confirm import ConfirmationEngine, ConfirmationStorage
from lamson.routing import Router
from lamson.server import Relay

# replies go to the logging server (lamson log), which keeps them in run/queue
settings.relay = Relay(host=settings.relay_config['host'], port=settings.relay_config['port'], debug=0)
settings.receiver = None

settings.confirm = ConfirmationEngine(settings.pending_dir, ConfirmationStorage())

Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = True
Router.LOG_EXCEPTIONS = False

view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config['dir'], settings.template_config['module']))
