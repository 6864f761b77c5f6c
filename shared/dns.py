"""DNS lookups for delivery by MX and sender authentication, through one resolver built from settings.

``dns_config`` (settings) picks the name servers: ``{"nameservers": ["127.0.0.1"], "port": 5353,
"timeout": 3.0}``; unset, the system's (``/etc/resolv.conf``). Every lookup is bounded by
``timeout`` (a slow DNS server delays mail, it never hangs a worker), and the resolver keeps
dnspython's cache, so a batch of mail to one domain costs one lookup.
"""

from __future__ import annotations

from typing import Any

import dns.resolver

from lamson.typed_settings import Settings


def resolver(settings: Settings | Any = None) -> dns.resolver.Resolver:
    """A dnspython resolver as ``settings.dns_config`` says (system defaults otherwise), with a cache."""
    config = dict(Settings.of(settings).dns_config or {})
    servers = config.get("nameservers")
    made = dns.resolver.Resolver(configure=not servers)
    if servers:
        made.nameservers = list(servers)
    if config.get("port"):
        made.port = int(config["port"])
    timeout = float(config.get("timeout", 5.0))
    made.timeout = timeout
    made.lifetime = timeout
    made.cache = dns.resolver.Cache()
    return made
