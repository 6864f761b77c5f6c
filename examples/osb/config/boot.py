"""Turn the settings into services on config.settings (every router worker runs this).

Handlers reach them through app.model.services: ``relay`` (replies) and
``confirm_storage`` (pending confirmations, in Redis so every worker sees them).
"""

import sys
from pathlib import Path

import jinja2

from lamson import settings as lamson_settings
from lamson import view
from lamson.confirm import ConfirmationStorage
from lamson.receiver import SMTPReceiver
from lamson.relay import Relay
from lamson.router import Router

settings = lamson_settings.load(None, Path(__file__).resolve().parent.parent)
if settings.__name__ != "config.settings":
    sys.modules["config.settings"] = settings
    sys.modules["config"].settings = settings

settings.relay = Relay(host=settings.relay_config["host"], port=settings.relay_config["port"],
                       redis_url=settings.redis_url)
settings.receiver = SMTPReceiver(settings.receiver_config["host"], settings.receiver_config["port"])
settings.confirm_storage = ConfirmationStorage()

# Templates before the handlers: the same environment renders mail (.txt) and pages (.html, autoescaped).
view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config["dir"], settings.template_config["module"]),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=False),
    keep_trailing_newline=True,
)

Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = bool(getattr(settings, "router_reload", False))
