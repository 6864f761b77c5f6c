"""config/boot.py for tests: the same services, but no servers and no Redis.

conftest.py imports this module once. The Router keeps conversation state in
memory and settings.relay is a CapturingRelay, so what handlers send can be
checked with lamson.testing.delivered() / queue() (the test queue: run/queue
plus what was captured in the test process).
"""

from pathlib import Path

import jinja2

from lamson import settings as lamson_settings
from lamson import spam, view
from lamson.receiver import SMTPReceiver
from lamson.router import LocalLocks, MemoryStorage, Router
from lamson.testing import CapturingRelay

# config.settings, or the module named by LAMSON_SETTINGS, as in config/boot.py.
settings = lamson_settings.load(None, Path(__file__).resolve().parent.parent)

settings.relay = CapturingRelay(host=settings.relay_config["host"], port=settings.relay_config["port"])
settings.receiver = SMTPReceiver(settings.receiver_config["host"], settings.receiver_config["port"])

# The guide's config/boot.py also sets settings.database (lamson.utils.configure_database,
# SQLAlchemy: pip install 'lamson[db]'), and its handlers import it; a database_config
# in the guide's form (with "metadata") gets the same here, tables created.
if "metadata" in getattr(settings, "database_config", {}):
    from lamson.utils import configure_database

    settings.database = configure_database(settings.database_config, also_create=True)

Router.STATE_STORE = MemoryStorage()
Router.LOCKS = LocalLocks()
# Spam filters (lamson.spam, @spam_filter) keep their token counts in memory too.
spam.use_memory_store()
Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = False

# The same template setup as config/boot.py, so tests see what production sends.
view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config["dir"], settings.template_config["module"]),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=False),
    keep_trailing_newline=True,
)
