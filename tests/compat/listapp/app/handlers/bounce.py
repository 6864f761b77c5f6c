"""What a bounce does to a member: @bounce_to in app.handlers.mailinglist calls these.

A hard bounce (5.x.x: the mailbox does not exist) takes the address off
every list; a soft one (4.x.x: full, over quota) only notes it, since the
next post may get through. Either way the bouncing system's conversation
goes back to START.
"""
import logging

from app.model import members
from lamson.routing import route


@route(".+")
def HARD_BOUNCED(message):
    address = message.bounce.final_recipient
    logging.info("hard bounce for %s: %s", address, message.bounce.error_for_humans())
    members.remove_everywhere(address)
    from app.handlers import mailinglist
    return mailinglist.START


@route(".+")
def SOFT_BOUNCED(message):
    logging.info("soft bounce for %s: %s", message.bounce.final_recipient, message.bounce.error_for_humans())
    from app.handlers import mailinglist
    return mailinglist.START
