"""Handlers for tests/workers/test_lifecycle.py: record each call, answer through the Relay."""

from lamson.mail import MailResponse
from lamson.relay import Relay
from lamson.router import route, stateless

CALLS: list[str] = []
FAIL: set[str] = set()
relay = Relay()


@route("(address)@(host)", address=".+")
@stateless
def START(message, address=None, host=None):
    subject = str(message["Subject"])
    CALLS.append(subject)
    if subject in FAIL:
        raise RuntimeError(f"handler fails on {subject}")
    if address == "fanout":  # a list post: one message, a reply per member
        for n in range(1000):
            relay.deliver(MailResponse(To=f"member{n}@example.org", From=f"list@{host}", Subject=subject,
                                       Body="post"))
        return
    relay.deliver(MailResponse(To=message.From, From=f"{address}@{host}", Subject=f"Re: {subject}", Body="ok"))
