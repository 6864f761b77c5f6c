"""A handler without an ERROR state: a failing state keeps the conversation where it was."""

from lamson.router import route

CALLS: list[str] = []


@route("fail@(host)")
def START(message, host=None):
    CALLS.append("START")
    return SECOND


@route("fail@(host)")
def SECOND(message, host=None):
    CALLS.append("SECOND")
    raise ValueError("always fails")
