"""Turn the settings into services on config.settings (every router worker runs this).

Handlers reach them through ``config.settings``: ``relay`` (the outbox),
``members`` (who is on which list: Redis, app/model/members.py) and ``confirm``
(subscription and unsubscription confirmations: Redis and the run/pending
Maildir). config/testing.py builds the same services without Redis.
"""

import sys
from pathlib import Path

import jinja2

from lamson import settings as lamson_settings
from lamson import view
from lamson.confirm import ConfirmationEngine, ConfirmationStorage
from lamson.receiver import SMTPReceiver
from lamson.relay import Relay
from lamson.router import Router

# The settings with Lamson's defaults and the LAMSON_* environment overrides applied:
# config.settings, or the module named by -config / LAMSON_SETTINGS.
settings = lamson_settings.load(None, Path(__file__).resolve().parent.parent)
if settings.__name__ != "config.settings":
    # Handlers write `from config.settings import relay`: under -config that name
    # must be the settings chosen, with the services assigned below.
    sys.modules["config.settings"] = settings
    sys.modules["config"].settings = settings

# Where replies go: handlers call relay.deliver(), which hands the message to
# the relay worker; the relay worker delivers it to relay_config.
settings.relay = Relay(host=settings.relay_config["host"], port=settings.relay_config["port"],
                       redis_url=settings.redis_url)

# The list members, in the application's Redis (the worker's connection and namespace).
from app.model.members import RedisMembers  # noqa: E402 - needs the project root that load() put on sys.path

settings.members = RedisMembers()

# The secret that signs every VERP return path (app/model/verp.py): generated once into
# run/verp.key (0600) by the first process that boots, read by every other, so a bounce
# can be checked by any worker. Keep it with the Redis data: a new key makes the return
# paths of copies already sent unverifiable (their bounces are then ignored).
from app.model import verp  # noqa: E402

settings.verp_key = verp.load_key(Path(__file__).resolve().parent.parent / settings.run_dir / verp.KEY_FILE)

# Confirmations: the secret in Redis (NAMESPACE:confirm:...), the request's message in a Maildir.
settings.confirm = ConfirmationEngine(settings.pending_dir, ConfirmationStorage())

# Where incoming mail arrives. The receiver is its own process (`lamson receiver`,
# run by `lamson start`); this only records its address for your code.
settings.receiver = SMTPReceiver(settings.receiver_config["host"], settings.receiver_config["port"])

# Routing: default capture patterns, then the handlers. RELOAD re-imports a
# handler module whose file changed, so edits need no restart: a development
# setting (router_reload in config/settings.py, on with LAMSON_RELOAD=1 or
# `lamson start -reload`), off under the deploy files.
Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = bool(getattr(settings, "router_reload", False))

# Templates for lamson.view: Jinja2 from the app/templates package folder.
# .html (and .xml) templates are autoescaped, so what a sender wrote cannot
# become markup in a reply; .txt templates are plain text and left as they are.
view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config["dir"], settings.template_config["module"]),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=False),
    keep_trailing_newline=True,
)
