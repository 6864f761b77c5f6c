"""The guide's one-shot blog shape: one state function under two stacked routes."""

from lamson.router import route, route_like, stateless

CALLS: list[tuple[str, dict]] = []


@route("(post_name)@(host)")
@route("(post_name)-(action)@(host)", action="delete")
def START(message, post_name=None, host=None, action=None):
    CALLS.append(("START", {"post_name": post_name, "host": host, "action": action}))
    return POSTING


@route_like(START)
def POSTING(message, post_name=None, host=None, action=None):
    CALLS.append(("POSTING", {"post_name": post_name, "host": host, "action": action}))
    return START


@route("(post_name)-(action)@(host)", action="delete")
@stateless
def AUDIT(message, post_name=None, host=None, action=None):
    CALLS.append(("AUDIT", {"post_name": post_name, "action": action}))
