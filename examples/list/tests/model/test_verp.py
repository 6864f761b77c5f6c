"""VERP return paths: every member address survives the round trip, and the result routes."""

import re

import pytest
from app.model import verp

from lamson.router import Router

ADDRESSES = [
    "alice@example.org",
    "Bob.Smith@Example.NET",
    "bob+lists@example.net",
    "a=b@example.com",
    '"john doe"@example.com',
    "o'brien/x%y!z@sub.example.co.uk",
    "josé@example.org",
    "x_y-z@xn--bcher-kva.example",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_round_trip(address):
    encoded = verp.encode(address)
    assert re.fullmatch(r"[a-z0-9._+-]+=[a-z0-9._+-]+", encoded), encoded
    assert verp.decode(encoded) == address.lower()


@pytest.mark.parametrize("address", ADDRESSES)
def test_return_path_routes_to_the_bounce_handler(lamson_router, address):
    path = verp.return_path("lamson", address, "test.com")
    handlers = [f.__name__ for funcs, _ in Router.match(path) for f in funcs]
    assert handlers == ["BOUNCE"], (path, handlers)


def test_plus_and_equals_are_escaped():
    assert verp.encode("a+b=c@example.org") == "a+2bb+3dc=example.org"


@pytest.mark.parametrize("text", ["nodomain", "a=b=c", "a+zz=example.org", "a+2=example.org", "=example.org", "a b=c"])
def test_what_we_did_not_make_is_refused(text):
    with pytest.raises(ValueError):
        verp.decode(text)


def test_not_an_address_is_refused():
    with pytest.raises(ValueError):
        verp.encode("no-at-sign")
