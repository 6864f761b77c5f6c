"""A mailing-list style handler keyed by module + list address, not sender alone."""

from lamson.router import nolocking, route, state_key_generator

CALLS: list[str] = []


@state_key_generator
def state_key(module_name, message):
    return module_name + ":" + message.To


@route("(list)@lists\\.(host)", list="[a-z]+")
def START(message, list=None, host=None):
    CALLS.append("START")
    return MEMBER


@route("(list)@lists\\.(host)", list="[a-z]+")
@nolocking
def MEMBER(message, list=None, host=None):
    CALLS.append("MEMBER")
