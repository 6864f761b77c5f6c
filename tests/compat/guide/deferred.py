import logging
from lamson.routing import route, stateless
from config.settings import relay
from lamson import view


@route("(address)-deferred@(host)", address=".+")
def START(message, address=None, host=None):
    logging.debug("Processing deferred message to %s.", message['to'])
    relay.deliver(view.respond(locals(), "deferred.txt",
                               From="noreply@%(host)s",
                               To=message['from'],
                               Subject="Processed later by %(host)s"))
