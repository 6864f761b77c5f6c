"""A handler that records what it was given, and fails or refuses on request (tests/testing/test_inprocess.py)."""

from lamson.router import route
from lamson.server import SMTPError

SEEN: list[dict] = []


@route("(address)@(host)", address="observe")
def START(message, address=None, host=None):
    subject = message["subject"] or ""
    if subject == "boom":
        raise RuntimeError("handler bug")
    if subject == "refuse":
        raise SMTPError(550, "not here")
    SEEN.append({"envelope": getattr(message, "envelope", None), "auth": getattr(message, "auth", None),
                 "message": message,
                 "subject": subject})
    return START
