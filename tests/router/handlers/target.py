"""The module whose state ``other`` sets."""

from lamson.router import route

CALLS: list[str] = []


@route("handoff@(host)")
def START(message, host=None):
    CALLS.append("target.START")


@route("handoff@(host)")
def WAITING(message, host=None):
    CALLS.append("target.WAITING")
    return START
