"""config/boot.py for tests: the same services, but no servers and no Redis.

The Router keeps conversation state in memory, settings.relay captures
replies (lamson.testing.delivered), confirmations are kept in a dict, the
spam filter counts in memory. The queue worker's handlers (queue_handlers)
are loaded by the test that routes its notes (tests/handlers/test_index.py).
tests/conftest.py points the blog's folders into each test's tmp_path.
"""

from pathlib import Path

import jinja2

from lamson import settings as lamson_settings
from lamson import spam, view
from lamson.confirm import ConfirmationStorage
from lamson.receiver import SMTPReceiver
from lamson.router import LocalLocks, MemoryStorage, Router
from lamson.testing import CapturingRelay

settings = lamson_settings.load(None, Path(__file__).resolve().parent.parent)

settings.relay = CapturingRelay(host=settings.relay_config["host"], port=settings.relay_config["port"])
settings.receiver = SMTPReceiver(settings.receiver_config["host"], settings.receiver_config["port"])
settings.confirm_storage = ConfirmationStorage(db={})
spam.use_memory_store()

view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config["dir"], settings.template_config["module"]),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=False),
    keep_trailing_newline=True,
)

Router.STATE_STORE = MemoryStorage()
Router.LOCKS = LocalLocks()
Router.LOG_EXCEPTIONS = False
Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = False
