"""Settings of the mailing list manager: plain Python variables (see Lamson's scaffold).

Every Lamson process (receiver, router workers, relay, the command line)
loads this module; what it does not set gets Lamson's defaults
(lamson.settings.DEFAULTS). config/boot.py turns these values into services
(settings.relay, settings.members, settings.confirm).

The ports differ from the demo's (8823/8825/6379) so both can run on one
machine. For deployment, environment variables override: LAMSON_RECEIVER_PORT,
LAMSON_RELAY_PORT, LAMSON_REDIS_URL, LAMSON_METRICS_PORT, LAMSON_AUTH_RESULTS, ...
"""

import os
import re

# Where the receiver listens for incoming SMTP (port 25 on your public address in production).
receiver_config = {"host": "127.0.0.1", "port": 8833}

# The smart host the copies go to. In development it is the logging server
# (`lamson log`, a program of deploy/supervisord.conf), which keeps every
# message in the run/queue Maildir (`mutt -F muttrc`, `lamson queue -keys`).
relay_config = {"host": "127.0.0.1", "port": 8835}

# Prometheus metrics (`lamson metrics`).
metrics_config = {"host": "127.0.0.1", "port": 9118}
web_config = {"host": "127.0.0.1", "port": 8881}

# The lists this server runs: name -> description (the phrase of the List-Id header).
# A name is lowercase letters, digits and dots; only these names are routed, so mail
# to any other address at the host is parked in run/undeliverable, and nobody can
# create a list by writing to it.
mailing_lists = {
    "lamson": "Talk about the Lamson mail framework",
    "announce": "Lamson release announcements",
}

handlers = ["app.handlers.mailinglist"]

# (host) is the list domain; (list_name) matches exactly the configured list names.
router_defaults = {
    "host": r"test\.com",
    "list_name": "|".join(re.escape(name) for name in sorted(mailing_lists, key=len, reverse=True)),
}

template_config = {"dir": "app", "module": "templates"}

router_reload = os.environ.get("LAMSON_RELOAD", "") == "1"

# Redis holds the queues, the members (NAMESPACE:list:LIST:members, app/model/members.py),
# pending confirmations (NAMESPACE:confirm:...) and the spam filter's counts. `lamson start`
# runs an embedded redis-server on this address with a generated password (run/redis.pass).
redis_url = "redis://127.0.0.1:6389/0"

# Every Redis key and rq queue of this application starts with this, so it can share a
# Redis with the demo or another application.
namespace = "list"

spool = "maildir"

# Where the application keeps mail of its own (Maildirs, relative to the project root):
# a post's first message waiting for its confirmation, every post per list
# (run/archive/LIST), and what the spam filter held back.
pending_dir = "run/pending"
archive_dir = "run/archive"
spam_dir = "run/spam"
# The spam filter's token counts (in Redis, under this storage name): train it with
# `lamson spam` (docs/spam.md); untrained, it passes everything.
spam_db = "run/spamdb"

# Bounces (VERP: every copy's envelope sender is LIST-bounce+LOCAL=DOMAIN=TAG@HOST, TAG an HMAC keyed
# by run/verp.key: a bounce to a return path without our tag is ignored, app/model/verp.py).
# Soft bounces are counted only; a member is disabled after this many hard bounces
# and mailed how to come back (subscribe again).
bounce_disable_after = 3

# A non-member who posts is told "members only" once per this many seconds (a day),
# so a forged sender or a persistent one cannot make the list mail someone repeatedly.
refusal_interval = 24 * 3600

# Where a web server publishes run/archive/LIST ({list}, {host}); None leaves List-Archive
# out. This example ships no web server: point it at yours.
list_archive_url = "https://{host}/archive/{list}/"

# Fan-out. A post is one message in, one outbox file per member out (each member's copy
# has its own VERP envelope sender), so max_recipients (RCPTs per incoming message,
# default 20) never limits a list. What does: reply_rate_limit, the relay's loop guard,
# which parks automatic mail (everything a handler sends) beyond N messages a minute to
# one address. Every copy counts against its member, so a member of lively lists here
# would lose copies at the default 60 a minute; 600 still stops a runaway loop within
# a minute. Posts per list per minute are bounded by the senders, not by this.
reply_rate_limit = 600

# Automatic answers to an address that proved nothing (confirmation requests, help, refusals) per
# address and hour, whatever list address was written to (lamson.confirm, docs/security.md). Copies
# to members are not counted. The default, written out:
unsolicited_per_hour = 5

# Domains the receiver accepts mail for: from router_defaults["host"] (test.com).
# served_domains = ["test.com"]
