"""The mailing lists: LIST-subscribe@, LIST-confirm-ID@, LIST@ (posts) and LIST-unsubscribe@.

A sender starts in START: asking to subscribe sends a confirmation (the
sender must show the address is theirs), answering it makes them a member
(POSTING). A member's posts are archived and sent to every member;
unsubscribing returns them to START. Bounces of list mail reach START (the
bouncing system is a sender we never talked to) and go to app.handlers.bounce.
"""
import logging

from app.handlers import bounce
from app.model import archive, members
from config.settings import confirm, relay
from lamson import view
from lamson.bounce import bounce_to
from lamson.mail import MailResponse
from lamson.routing import route


@route("(list_name)-(action)@(host)", action="subscribe")
@route("(list_name)@(host)")
@bounce_to(soft=bounce.SOFT_BOUNCED, hard=bounce.HARD_BOUNCED)
def START(message, list_name=None, host=None, action=None):
    if action == "subscribe":
        confirm.send(relay, list_name, message, "confirm.txt", locals())
        return CONFIRMING_SUBSCRIBE
    # a post from someone who is not a member
    relay.deliver(view.respond(locals(), "notmember.txt",
                               From="%(list_name)s-noreply@%(host)s",
                               To=message['from'],
                               Subject="You are not a member of %(list_name)s"))
    return START


@route("(list_name)-confirm-(id_number)@(host)")
def CONFIRMING_SUBSCRIBE(message, list_name=None, id_number=None, host=None):
    original = confirm.verify(list_name, message.route_from, id_number)
    if not original:
        logging.warning("wrong confirmation %s for %s from %s", id_number, list_name, message.route_from)
        return CONFIRMING_SUBSCRIBE
    members.add(list_name, message.route_from)
    relay.deliver(view.respond(locals(), "welcome.txt",
                               From="%(list_name)s@%(host)s",
                               To=message['from'],
                               Subject="Welcome to %(list_name)s"))
    return POSTING


@route("(list_name)-(action)@(host)", action="unsubscribe")
@route("(list_name)@(host)")
def POSTING(message, list_name=None, host=None, action=None):
    if action == "unsubscribe":
        members.remove(list_name, message.route_from)
        relay.deliver(view.respond(locals(), "goodbye.txt",
                                   From="%(list_name)s-noreply@%(host)s",
                                   To=message['from'],
                                   Subject="Goodbye from %(list_name)s"))
        return START
    post = craft_post(message, list_name, host)
    archive.store(list_name, post)
    for member in members.find(list_name):
        relay.deliver(post, To=member)
    return POSTING


def craft_post(message, list_name, host):
    """The copy of message the members get: the poster's From and Subject, the list's headers, every part."""
    list_addr = f"{list_name}@{host}"
    post = MailResponse(To=list_addr, From=message['from'], Subject=message['subject'])
    post['Reply-To'] = list_addr
    post['Sender'] = list_addr
    post['List-Id'] = f"<{list_name}.{host}>"
    post['List-Post'] = f"<mailto:{list_addr}>"
    post['List-Unsubscribe'] = f"<mailto:{list_name}-unsubscribe@{host}>"
    for name in ('Message-Id', 'In-Reply-To', 'References'):  # threads stay threads
        if message[name]:
            post[name] = message[name]
    if message.all_parts():
        post.attach_all_parts(message)
    else:
        post.Body = message.body()
    return post
