"""A handler written as the guide describes (only the import path differs)."""

from lamson.router import route, route_like, stateless

CALLS: list[tuple[str, dict]] = []


@route("(address)@(host)", address=".+")
def START(message, address=None, host=None):
    CALLS.append(("START", {"address": address, "host": host}))
    return NEW_USER


@route_like(START)
def NEW_USER(message, address=None, host=None):
    CALLS.append(("NEW_USER", {"address": address, "host": host}))
    if message["subject"] == "now":
        # Point 6 of the guide: run the next state on this message.
        return RUNNING(message, address=address, host=host)
    return RUNNING


@route_like(START)
def RUNNING(message, address=None, host=None):
    CALLS.append(("RUNNING", {"address": address, "host": host}))
    if message["subject"] == "boom":
        raise RuntimeError("handler bug")
    if message["subject"] == "stay":
        return None
    return END


@route_like(START)
def END(message, address=None, host=None):
    CALLS.append(("END", {"address": address, "host": host}))
    return START


@route_like(START)
def ERROR(message, address=None, host=None):
    CALLS.append(("ERROR", {"address": address, "host": host}))
    return START


@route("(list_name)-(action)@(host)", list_name="[a-z]+", action="subscribe|unsubscribe")
@stateless
def FORWARD(message, list_name=None, action=None, host=None):
    CALLS.append(("FORWARD", {"list_name": list_name, "action": action, "host": host}))
    return END  # ignored: stateless functions never change the state
