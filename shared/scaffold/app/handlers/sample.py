"""A small conversation, to copy from: welcome a new sender, then greet them again.

Each state is a function in CAPS; a route above it says which addresses it
answers, and the state it returns is where this sender's conversation goes
next. Conversation state lives in Redis (in memory in tests), per handler
module and sender, so the next message from the same sender runs the state
returned here, in whichever router worker picks it up.

Replies go through ``relay.deliver``, which only enqueues them: the relay
worker delivers to relay_config (the ``lamson log`` server in development,
whose run/queue Maildir you can read with ``mutt -F muttrc``).
"""

import logging

from config.settings import relay

from lamson import view
from lamson.bounce import auto_reply_allowed
from lamson.loops import first_for
from lamson.router import route, route_like, stateless

log = logging.getLogger(__name__)


def reply(message, template, address, host):
    """Answer ``message`` with a rendered template, unless it is a bounce or an auto-reply.

    Two robots that answer every message would answer each other forever;
    RFC 3834's rules (in auto_reply_allowed) stop that. A message sent to
    several of our addresses runs this once per address: first_for answers
    it once (one message must never draw a reply per recipient).
    """
    if not auto_reply_allowed(message):
        log.info("not answering %s: automatic or bulk mail", message.From)
        return
    if not first_for(message):
        log.info("not answering %s again: this message was already answered", message.From)
        return
    subject = message["subject"] or "(no subject)"
    # Headers name the variables instead of containing their values: what a
    # sender wrote is only ever data, never part of a template.
    response = view.respond(
        {"sender": message.From, "address": address, "host": host, "subject": subject},
        Body=template,
        From="{{ address }}@{{ host }}",
        To="{{ sender }}",
        Subject="Re: {{ subject }}",
    )
    if message["message-id"]:
        response["In-Reply-To"] = message["message-id"]
    relay.deliver(response)


@route("(address)@(host)", address=r"[^@\s]+")
def START(message, address=None, host=None):
    """A sender we have not heard from: welcome them."""
    reply(message, "welcome.txt", address, host)
    return GREETED


@route_like(START)
def GREETED(message, address=None, host=None):
    """Everyone we already welcomed gets the shorter answer, and stays here."""
    reply(message, "again.txt", address, host)
    return GREETED


@route("postmaster@(host)")
@stateless
def POSTMASTER(message, host=None):
    """Runs for every message to postmaster@, whatever the sender's state (stateless)."""
    log.info("postmaster mail from %s: %s", message.From, message["subject"])
