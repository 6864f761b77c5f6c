"""VERP return paths: every member address survives the round trip, the result routes, tags verify."""

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


KEY = b"k" * 43


@pytest.mark.parametrize("address", ADDRESSES)
def test_return_path_routes_to_the_bounce_handler(lamson_router, address):
    path = verp.return_path("lamson", address, "test.com", KEY)
    handlers = [f.__name__ for funcs, _ in Router.match(path) for f in funcs]
    assert handlers == ["BOUNCE"], (path, handlers)


@pytest.mark.parametrize("address", ADDRESSES)
def test_signed_return_paths_verify_for_their_list_and_member_only(address):
    local = verp.return_path("lamson", address, "test.com", KEY).split("@")[0].split("bounce+", 1)[1]
    assert verp.verified_member(local, "lamson", KEY) == address.lower()
    assert verp.verified_member(local.upper(), "lamson", KEY) == address.lower()  # routers lowercase anyway
    with pytest.raises(verp.BadTag):
        verp.verified_member(local, "announce", KEY)
    with pytest.raises(verp.BadTag):
        verp.verified_member(local, "lamson", b"another key")
    with pytest.raises(verp.BadTag):
        verp.verified_member(local.rpartition("=")[0], "lamson", KEY)  # untagged


def test_a_common_return_path_fits_the_64_octet_local_part():
    assert len(verp.return_path("lamson", "firstname.lastname@example.org", "test.com", KEY).split("@")[0]) <= 64


def test_the_key_file_is_generated_once_private(tmp_path):
    key = verp.load_key(tmp_path / "run" / "verp.key")
    assert (tmp_path / "run" / "verp.key").stat().st_mode & 0o777 == 0o600
    assert len(key) >= 32 and verp.load_key(tmp_path / "run" / "verp.key") == key


def test_plus_and_equals_are_escaped():
    assert verp.encode("a+b=c@example.org") == "a+2bb+3dc=example.org"


@pytest.mark.parametrize("text", ["nodomain", "a=b=c", "a+zz=example.org", "a+2=example.org", "=example.org", "a b=c"])
def test_what_we_did_not_make_is_refused(text):
    with pytest.raises(ValueError):
        verp.decode(text)


def test_not_an_address_is_refused():
    with pytest.raises(ValueError):
        verp.encode("no-at-sign")
