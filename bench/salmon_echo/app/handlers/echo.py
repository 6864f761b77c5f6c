"""Answer every message once, like the Lamson demo's START handler.

Salmon 3.3 has no Jinja2 dependency, so the body is built with ``str.format``
from the same fields the demo's template uses; the reply's headers are the
demo's (From the address written to, To the sender, Re: subject, In-Reply-To
and References), so the benchmark sink recognises both projects' replies.
"""

from config import settings
from salmon.mail import MailResponse
from salmon.routing import route, stateless

BODY = (
    "Hello {sender},\n\n"
    'Salmon received your message "{subject}" at {address}@{host}\n'
    "and this reply was built by app/handlers/echo.py.\n\n"
    "-- \nThe Salmon echo benchmark\n"
)


@route("(address)@(host)", address=r"[^@\s]+")
@stateless
def START(message, address=None, host=None):
    """One reply per message, delivered by the relay before the SMTP 250."""
    subject = message["subject"] or "(no subject)"
    reply = MailResponse(
        To=message.From,
        From=f"{address}@{host}",
        Subject=f"Re: {subject}",
        Body=BODY.format(sender=message.From, subject=subject, address=address, host=host),
    )
    if message["message-id"]:
        reply["In-Reply-To"] = message["message-id"]
        reply["References"] = message["message-id"]
    settings.relay.deliver(reply)
