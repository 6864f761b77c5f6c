"""Hands the conversation over to another module's state."""

from lamson.router import route
from tests.router.handlers import target

CALLS: list[str] = []


@route("handoff@(host)")
def START(message, host=None):
    CALLS.append("other.START")
    return target.WAITING
