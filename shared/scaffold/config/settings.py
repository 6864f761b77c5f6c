"""Settings of this Lamson application: plain Python variables.

Every Lamson process (receiver, router workers, relay, the command line)
loads this module; the names it does not set get Lamson's defaults (see
lamson.settings.DEFAULTS). config/boot.py then turns these values into
services on this module (settings.relay, ...), so handlers can write
``from config.settings import relay``.

For deployment, environment variables override: LAMSON_RECEIVER_HOST,
LAMSON_RECEIVER_PORT, LAMSON_RELAY_HOST, LAMSON_RELAY_PORT, LAMSON_REDIS_URL,
LAMSON_SPOOL, LAMSON_SPOOL_DIR (and LAMSON_RELOAD, below).
"""

import os

# Where the receiver listens for incoming SMTP (`lamson start` runs it).
# In production: port 25 on your public address.
receiver_config = {"host": "127.0.0.1", "port": 8823}

# The smart host that replies are delivered to (Postfix, Exim, ...). In
# development it is the logging server (`lamson log`, also a program of
# `lamson start`), which keeps every message in the run/queue Maildir.
relay_config = {"host": "127.0.0.1", "port": 8825}

# The handler modules (not files) the router loads.
handlers = ["app.handlers.sample"]

# Default regular expressions for the (captures) in routes: (host) is in
# nearly every route, so set it once here.
router_defaults = {"host": "test\\.com"}

# Jinja2 templates: package "app", folder "templates" (config/boot.py).
template_config = {"dir": "app", "module": "templates"}

# Development only: re-import a handler module when its file changes, so edits
# need no restart (the guide's Router.RELOAD; config/boot.py applies it). It
# costs a check per message and swaps code under running conversations, so it
# is off unless LAMSON_RELOAD=1 is set (`lamson start -reload` sets it);
# deploy/supervisord.conf never does.
router_reload = os.environ.get("LAMSON_RELOAD", "") == "1"

# Your database, if you use one (Lamson itself needs none): a URL your
# model code in app/model can hand to the library of your choice.
database_config = {"url": "sqlite:///app/data/main.db"}

# Redis holds the queues between the stages, conversation state and locks.
# `lamson start` runs an embedded redis-server on this address (deploy/redis.conf)
# that requires a password: the one in this URL (redis://:PASSWORD@host:port/0),
# else one generated into run/redis.pass (0600) that every Lamson process reads.
# For rq's tools: RQ_REDIS_URL="$(lamson redis-url)" rq info
redis_url = "redis://127.0.0.1:6379/0"

# Accepted mail waits in a durable spool until routed: "maildir" (run/spool)
# or "redis" (in Redis, which then needs AOF).
spool = "maildir"

# Domains the receiver accepts mail for (plain names or regexes). Unset, they come
# from router_defaults["host"]; mail for any other domain gets 550 5.7.1 at RCPT,
# so the server is never an open relay. See docs/security.md in Lamson.
# served_domains = ["test.com"]

# Listen on port 25 as root, then run as this user (the spool must be writable by it).
# receiver_user = "lamson"

# STARTTLS on the receiver, and a submission port where users who AUTH (after STARTTLS) may
# send to any domain; add users with `lamson passwd alice -file config/submission_users`.
# receiver_tls = {"cert": "config/tls/fullchain.pem", "key": "config/tls/key.pem", "require": False}
# submission_config = {"host": "0.0.0.0", "port": 587, "users": "config/submission_users"}

# The guide's "Deferred Processing To Queues": handlers push slow work into a
# Maildir queue (lamson.queue.Queue(queue_config["queue"]).push(message)) and
# a QueueReceiver (config/queue.py; `lamson start -boot config.queue`) routes
# it with queue_handlers. "sleep": how often (seconds) it also sweeps the
# folder for messages written by processes that could not wake it.
queue_config = {"queue": "run/posts", "sleep": 10}
queue_handlers = []
