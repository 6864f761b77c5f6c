"""A DNS server on a free loopback port answering from a zone the test gives (dnslib), for MX, SPF, DKIM, DMARC.

    with dns_server('''
        example.org.        300 IN MX  10 mx1.example.org.
        mx1.example.org.    300 IN A   127.0.0.1
        example.org.        300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
    ''') as server:
        settings.dns_config = server.config   # {"nameservers": ["127.0.0.1"], "port": N, "timeout": 2}

``server.zone`` can be replaced while it runs; ``server.hang = True`` makes it stop answering
(a DNS server that times out).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSServer


def _free_udp_and_tcp_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port for a DNS server")


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """Answers from a list of records; NXDOMAIN for names it does not know, NOERROR/empty for types."""

    def __init__(self, zone: str) -> None:
        self.lock = threading.Lock()
        self.hang = False
        self.set_zone(zone)

    def set_zone(self, zone: str) -> None:
        records = RR.fromZone(zone) if zone.strip() else []
        with self.lock:
            self.records = records

    def resolve(self, request: Any, handler: Any) -> Any:
        if self.hang:
            return None  # no reply: the client times out
        reply = request.reply()
        qname, qtype = request.q.qname, QTYPE[request.q.qtype]
        with self.lock:
            known = [rr for rr in self.records if rr.rname == qname]
        for rr in known:
            if qtype == "ANY" or QTYPE[rr.rtype] == qtype:
                reply.add_answer(rr)
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class Server:
    def __init__(self, resolver: ZoneResolver, port: int) -> None:
        self.resolver = resolver
        self.port = port

    @property
    def config(self) -> dict[str, Any]:
        return {"nameservers": ["127.0.0.1"], "port": self.port, "timeout": 2.0}

    @property
    def zone(self) -> None:  # write-only
        return None

    @zone.setter
    def zone(self, text: str) -> None:
        self.resolver.set_zone(text)

    @property
    def hang(self) -> bool:
        return self.resolver.hang

    @hang.setter
    def hang(self, value: bool) -> None:
        self.resolver.hang = value


class _Quiet:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


@contextmanager
def dns_server(zone: str = "") -> Iterator[Server]:
    """UDP and TCP on one free loopback port; stopped (threads joined) on exit."""
    resolver = ZoneResolver(zone)
    port = _free_udp_and_tcp_port()
    udp = DNSServer(resolver, port=port, address="127.0.0.1", logger=_Quiet())
    tcp = DNSServer(resolver, port=port, address="127.0.0.1", tcp=True, logger=_Quiet())
    udp.start_thread()
    tcp.start_thread()
    try:
        yield Server(resolver, port)
    finally:
        udp.stop()
        tcp.stop()


def query(server: Server, name: str, qtype: str = "A") -> Any:
    """Ask the test server directly (for the fixture's own test)."""
    packet = DNSRecord.question(name, qtype).send("127.0.0.1", server.port, timeout=2)
    return DNSRecord.parse(packet)
