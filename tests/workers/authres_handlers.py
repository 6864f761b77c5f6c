"""Handlers for tests/workers/test_authres_pipeline.py: record what each call saw of sender authentication."""

from lamson.router import route, stateless

SEEN: list[dict[str, object]] = []


@route("(address)@(host)", address=".+")
@stateless
def START(message, address=None, host=None):
    auth = message.auth
    SEEN.append({
        "to": message.To,
        "auth": auth,
        "spf": auth.spf if auth else None,
        "dkim": auth.dkim if auth else None,
        "dmarc": auth.dmarc if auth else None,
        "headers": message.get_all("Authentication-Results"),
        "first": message.keys()[0],
    })
