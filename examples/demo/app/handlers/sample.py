"""The demo handler: every message to an address at the demo host gets a reply.

The reply is rendered from ``app/templates/reply.txt`` and sent through the
relay (which only enqueues it: the relay worker delivers). Bounces,
auto-replies and list mail get no answer (RFC 3834), so two robots never
answer each other forever; and a message sent to many of our addresses is
routed once per address but answered once (``first_for``), so one message
can never draw a hundred replies to an unverified sender.
"""

import logging

from config.settings import relay

from lamson import view
from lamson.bounce import auto_reply_allowed
from lamson.loops import first_for
from lamson.router import route, stateless

log = logging.getLogger(__name__)


@route("(address)@(host)", address=r"[^@\s]+")
@stateless
def START(message, address=None, host=None):
    if not auto_reply_allowed(message):
        log.info("no reply to %s: automatic or bulk mail", message.From)
        return
    if not first_for(message):
        log.info("no reply to %s for %s: the message was already answered", message.From, message.To)
        return
    subject = message["subject"] or "(no subject)"
    reply = view.respond(
        {"address": address, "host": host, "sender": message.From, "subject": subject},
        Body="reply.txt",
        # Header values are templates too: untrusted text goes in as a variable, never into the string.
        From="{{ address }}@{{ host }}",
        To="{{ sender }}",
        Subject="Re: {{ subject }}",
    )
    if message["message-id"]:
        reply["In-Reply-To"] = message["message-id"]
        reply["References"] = message["message-id"]
    relay.deliver(reply)
