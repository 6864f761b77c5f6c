"""Issue 10's reproduction: a NEXT that returns END, and END on a catch-all route.

One message to ``x-next@host`` from a sender in state NEXT must run NEXT
only (the state it returns is for the next message), not NEXT and then END.
"""

from lamson.router import route

CALLS: list[str] = []


@route("(a)-next@(host)", a="[a-z]+")
def NEXT(message, a=None, host=None):
    CALLS.append("NEXT")
    return END


@route("(a)@(host)", a="[a-z.-]+")
def START(message, a=None, host=None):
    CALLS.append("START")
    return NEXT


@route("(a)@(host)", a="[a-z.-]+")
def END(message, a=None, host=None):
    CALLS.append("END")
    return START
