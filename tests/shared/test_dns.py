"""lamson.dns against the test DNS server (tests/dnsserver.py): answers, NXDOMAIN, timeouts."""

from __future__ import annotations

from types import SimpleNamespace

import dns.exception
import dns.resolver
import pytest

from lamson.dns import resolver
from tests.dnsserver import dns_server

ZONE = '''
example.org.      300 IN MX  10 mx1.example.org.
example.org.      300 IN MX  20 mx2.example.org.
mx1.example.org.  300 IN A   127.0.0.1
example.org.      300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
'''


def test_lookups_go_to_the_configured_server() -> None:
    with dns_server(ZONE) as server:
        res = resolver(SimpleNamespace(dns_config=server.config))
        mx = sorted((r.preference, str(r.exchange)) for r in res.resolve("example.org", "MX"))
        assert mx == [(10, "mx1.example.org."), (20, "mx2.example.org.")]
        assert [str(r) for r in res.resolve("mx1.example.org", "A")] == ["127.0.0.1"]
        assert b"v=spf1" in b"".join(next(iter(res.resolve("example.org", "TXT"))).strings)
        with pytest.raises(dns.resolver.NXDOMAIN):
            res.resolve("nowhere.example.org", "A")


def test_a_server_that_does_not_answer_is_a_bounded_timeout() -> None:
    with dns_server(ZONE) as server:
        server.hang = True
        res = resolver(SimpleNamespace(dns_config={**server.config, "timeout": 0.5}))
        with pytest.raises(dns.exception.Timeout):
            res.resolve("example.org", "MX")
