import logging
from lamson.routing import route, route_like, stateless
from config.settings import relay, database
from lamson import view
from lamson import queue


@route("(address)@(host)", address=".+")
def START(message, address=None, host=None):
    relay.deliver(view.respond(locals(), "welcome.txt",
                               From="noreply@%(host)s",
                               To=message['from'],
                               Subject="Welcome to %(host)s"))
    return NEW_USER


@route_like(START)
def NEW_USER(message, address=None, host=None):
    relay.deliver(view.respond(locals(), "again.txt",
                               From="noreply@%(host)s",
                               To=message['from'],
                               Subject="Hello again from %(host)s"))
    return NEW_USER


@route_like(START)
def END(message, address=None, host=None):
    return NEW_USER(message, address, host)


@route_like(START)
@stateless
def FORWARD(message, address=None, host=None):
    relay.deliver(message)


@route("(address)-deferred@(host)", address=".+")
@stateless
def DEFERRED(message, address=None, host=None):
    logging.debug("Deferring message to %s for later.", message['to'])
    q = queue.Queue("run/deferred")
    q.push(message)
