"""A handler module guarded by @spam_filter, written as a 1.x application would."""

from lamson.routing import route, route_like, stateless
from lamson.spam import spam_filter

CALLS: list[tuple[str, str]] = []
#: The X-Spam-Classification header each state function saw, in order.
HEADERS: list[str | None] = []


@route("quarantine@(host)")
def QUARANTINED(message, host=None):
    CALLS.append(("QUARANTINED", message["subject"]))
    return QUARANTINED


@route("(address)@(host)")
@spam_filter("run/spamdb", None, "run/spam")
def START(message, address=None, host=None):
    CALLS.append(("START", message["subject"]))
    HEADERS.append(message["X-Spam-Classification"])
    return POSTING


@route_like(START)
@spam_filter("run/spamdb", None, "run/spam", next_state=QUARANTINED)
def POSTING(message, address=None, host=None):
    CALLS.append(("POSTING", message["subject"]))
    return POSTING


@route("log-(address)@(host)")
@stateless
@spam_filter("run/spamdb", {"spam_cutoff": 0.95}, "run/spam-log")
def LOG(message, address=None, host=None):
    CALLS.append(("LOG", message["subject"]))
