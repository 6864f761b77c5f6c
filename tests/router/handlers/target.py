"""The module whose state ``other`` sets.

WAITING also answers ``target@``, an address ``other`` does not route: with
one stateful function per message (the first in route order), mail to
``handoff@`` always reaches ``other.START`` first.
"""

from lamson.router import route

CALLS: list[str] = []


@route("handoff@(host)")
def START(message, host=None):
    CALLS.append("target.START")


@route("(?:handoff|target)@(host)")
def WAITING(message, host=None):
    CALLS.append("target.WAITING")
    return START
