"""Settings of the demo application: the guide's plain variables.

The deploy files run it from the repository root with LAMSON_ROOT pointing
here. Environment variables (LAMSON_REDIS_URL, LAMSON_RECEIVER_PORT,
LAMSON_RELAY_PORT, LAMSON_SPOOL) override the values below.
"""

# Where the receiver listens for mail from the Internet (port 25 in production).
receiver_config = {"host": "127.0.0.1", "port": 8823}

# The smart host replies go to; in development, the logging server (`lamson log`).
relay_config = {"host": "127.0.0.1", "port": 8825}

# Handler modules the router workers load.
handlers = ["app.handlers.sample"]

# Default regular expressions for (captures) in routes.
router_defaults = {"host": r"test\.com"}

# Jinja2 templates: the package app, folder templates.
template_config = {"dir": "app", "module": "templates"}

# Queues, conversation state and locks.
redis_url = "redis://127.0.0.1:6379/0"

# Accepted mail waits in this Maildir until routed ("redis" keeps it in Redis instead).
spool = "maildir"
spool_dir = "run/spool"

# Domains the receiver accepts mail for; unset, they come from router_defaults["host"]
# (mail for other domains gets 550 5.7.1: never an open relay). See docs/security.md.
# served_domains = ["test.com"]
