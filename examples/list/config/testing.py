"""config/boot.py for tests: the same services, but no servers and no Redis.

conftest.py imports this module once. The Router keeps conversation state in
memory, settings.relay is a CapturingRelay (what handlers send is checked with
lamson.testing.delivered() / queue(), whose test queue is a scratch folder here), the members are a MemoryMembers, the
confirmations a dict, the spam filter counts in memory, and the Maildirs the
application writes (pending, archive, spam) live in a temporary folder, so
running the tests leaves nothing under run/.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

import jinja2

from lamson import settings as lamson_settings
from lamson import view
from lamson.confirm import ConfirmationEngine, ConfirmationStorage
from lamson.receiver import SMTPReceiver
from lamson.router import LocalLocks, MemoryStorage, Router
from lamson.spam import use_memory_store
from lamson.testing import CapturingRelay
from lamson.testing import relay as testing_relay

# config.settings, or the module named by LAMSON_SETTINGS, as in config/boot.py.
settings = lamson_settings.load(None, Path(__file__).resolve().parent.parent)

settings.relay = CapturingRelay(host=settings.relay_config["host"], port=settings.relay_config["port"])
settings.receiver = SMTPReceiver(settings.receiver_config["host"], settings.receiver_config["port"])

# Scratch Maildirs, set before the handlers are imported (their decorators read spam_dir).
scratch = Path(tempfile.mkdtemp(prefix="list-tests-"))
atexit.register(shutil.rmtree, scratch, ignore_errors=True)
settings.pending_dir = str(scratch / "pending")
settings.archive_dir = str(scratch / "archive")
settings.spam_dir = str(scratch / "spam")
# The test queue (lamson.testing.queue(), delivered(), clear_queue()) is run/queue by default, the
# logging server's Maildir: tests run while the lists are running must neither read nor empty it.
testing_relay.TEST_QUEUE = str(scratch / "queue")

from app.model.members import MemoryMembers  # noqa: E402 - needs the project root that load() put on sys.path

settings.members = MemoryMembers()
from app.model import verp  # noqa: E402

settings.verp_key = verp.load_key(scratch / "verp.key")
settings.confirm = ConfirmationEngine(settings.pending_dir, ConfirmationStorage(db={}))
use_memory_store()

Router.STATE_STORE = MemoryStorage()
Router.LOCKS = LocalLocks()
Router.defaults(**settings.router_defaults)
Router.load(settings.handlers)
Router.RELOAD = False

# The same template setup as config/boot.py, so tests see what production sends.
view.LOADER = jinja2.Environment(
    loader=jinja2.PackageLoader(settings.template_config["dir"], settings.template_config["module"]),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=False),
    keep_trailing_newline=True,
)
