"""Settings of the one-shot blog: the guide's plain variables, plus the blog's own.

Ports differ from the demo's (8823/8825/6379) so both can run at once:
receiver 8843, logging server 8845, Redis 6399, metrics 9128, and the pages
served on 8848 (README.md). Environment variables override for deployment
and tests: LAMSON_RECEIVER_PORT, LAMSON_RELAY_PORT, LAMSON_REDIS_URL,
LAMSON_METRICS_PORT, LAMSON_SPOOL, LAMSON_SPOOL_DIR.
"""

import os

# Where the receiver listens for incoming SMTP.
receiver_config = {"host": "127.0.0.1", "port": 8843}

# The smart host replies go to: in development the logging server (run/queue).
relay_config = {"host": "127.0.0.1", "port": 8845}

# Prometheus metrics (`lamson metrics`, the metrics program).
metrics_config = {"host": "127.0.0.1", "port": 9128}
web_config = {"host": "127.0.0.1", "port": 8882}

# The router workers' handlers: posting (and deleting), and comments.
handlers = ["app.handlers.post", "app.handlers.comment"]

# Every route's (host): the blog's mail domain. The receiver accepts mail for it only.
router_defaults = {"host": r"osb\.test"}

template_config = {"dir": "app", "module": "templates"}

router_reload = os.environ.get("LAMSON_RELOAD", "") == "1"

# The embedded Redis (deploy/redis.conf), password in run/redis.pass. Its own
# namespace, so the blog could share a Redis with other applications.
redis_url = "redis://127.0.0.1:6399/0"
namespace = "osb"

spool = "maildir"

# The blog: public pages in "site" (serve this folder), private records in
# "store" (authors' addresses, Markdown sources, comments); "url" is where
# "site" is served, for the links in replies; "host" the mail domain shown on pages.
blog_config = {"site": "app/data", "store": "app/store", "url": "http://127.0.0.1:8848/", "host": "osb.test"}

# Where first posts and first comments wait for their sender's confirmation.
pending_config = {"posts": "run/pending-posts", "comments": "run/pending-comments"}

# The comment spam filter (lamson.spam): the token counts' name in Redis, the
# filter's settings (None: defaults) and the Maildir where spam is kept.
spam_config = {"storage": "run/spamdb", "config": None, "queue": "run/spam"}

# Deferred processing (the guide's queue): handlers push "rebuild the index"
# notes into this Maildir; the queue program (config/queue.py) routes them
# with queue_handlers.
queue_config = {"queue": "run/index", "sleep": 10}
queue_handlers = ["app.handlers.index"]
