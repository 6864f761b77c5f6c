"""A handler that answers through a relay, as an application's handlers do."""

from lamson.mail import MailResponse
from lamson.router import route
from lamson.testing import CapturingRelay

relay = CapturingRelay()


@route("(address)@(host)", address="echo|help")
def START(message, address=None, host=None):
    reply = MailResponse(To=message.From, From=f"{address}@{host}", Subject="Re: " + (message["subject"] or ""),
                         Body=f"you said: {message.body().strip()}")
    relay.deliver(reply)
    return CONFIRMED


@route("(address)@(host)", address="echo|help")
def CONFIRMED(message, address=None, host=None):
    relay.deliver(MailResponse(To=message.From, From=f"{address}@{host}", Subject="again", Body="welcome back"))
