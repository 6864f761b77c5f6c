"""Delivery by MX (``relay_config = {"mx": True}``): no smart host, straight to each recipient's domain.

For one domain (an outbox file with recipients at several domains is split
into one file per domain first, :func:`split_by_domain`):

* the MX records, in preference order (equal preferences shuffled); no MX
  record: the domain's own A/AAAA addresses (RFC 5321 section 5.1);
* each host's addresses are tried in turn: a host that cannot be reached, or
  whose session fails before the transaction (greeting refused, TLS), makes
  way for the next one; the first host that answers the transaction decides,
  as a smart host does (4xx: retried later, 5xx: a notification);
* a null MX (``0 .``, RFC 7505), a domain that does not exist, or one with
  neither MX nor address records: refused for good (a notification, 5.1.10 /
  5.1.2); a DNS timeout or failure: temporary (retried, 4.4.3);
* STARTTLS is opportunistic (used when offered, not verified: RFC 7435), and
  sessions are kept per host and address (:class:`lamson.relay.smtp.Connections`);
* at most ``relay_domain_concurrency`` deliveries to one domain at a time,
  across all relay workers (a counter in Redis); over it: retried later.

The port is ``relay_config["mx_port"]`` (25; tests point it at a local sink).
"""

from __future__ import annotations

import logging
import random
import smtplib
from dataclasses import replace
from typing import Any

import dns.exception
import dns.name
import dns.resolver

from lamson import dns as ldns
from lamson import queues
from lamson.relay.smtp import Connections, Security, SessionError
from lamson.spool import Spooled
from lamson.typed_settings import Settings

log = logging.getLogger("lamson.relay")

#: MX delivery: STARTTLS when offered, certificates not checked (MX hosts' often are not valid).
OPPORTUNISTIC = Security(starttls="opportunistic", verify=False)

#: DNS errors that say nothing about the domain (try again later).
TEMPORARY_DNS = (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout)


def enabled(config: dict[str, Any]) -> bool:
    """Delivery by MX: ``"mx": True``, or no smart host at all."""
    return bool(config.get("mx")) or not config.get("host")


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def permanent(code: int, text: str) -> smtplib.SMTPResponseException:
    return smtplib.SMTPResponseException(code, text.encode())


def lookup(resolver: dns.resolver.Resolver, domain: str) -> list[tuple[str, list[str]]]:
    """The hosts to try for ``domain``, in order, each with its addresses.

    Raises SMTPResponseException: 5xx when the domain takes no mail, 451 when DNS did not answer.
    """
    try:
        answer = resolver.resolve(domain, "MX")
        records = sorted(answer, key=lambda r: (r.preference, random.random()))  # noqa: S311
    except dns.resolver.NXDOMAIN:
        raise permanent(550, f"5.1.2 the domain {domain} does not exist (NXDOMAIN)") from None
    except dns.resolver.NoAnswer:
        records = []
    except TEMPORARY_DNS as exc:
        raise permanent(451, f"4.4.3 DNS lookup of the MX of {domain} failed: {exc}") from None
    except dns.exception.DNSException as exc:
        raise permanent(451, f"4.4.3 DNS lookup of the MX of {domain} failed: {exc!r}") from None
    if any(r.exchange == dns.name.root for r in records):  # RFC 7505: "0 ." says no mail at all
        raise permanent(556, f"5.1.10 the domain {domain} accepts no mail (null MX, RFC 7505)")
    if not records:  # RFC 5321 5.1: the domain itself, as an implicit MX of preference 0
        addresses, failure = addresses_of(resolver, domain)
        if addresses:
            return [(domain, addresses)]
        if failure:
            raise permanent(451, f"4.4.3 DNS lookup of the address of {domain} failed: {failure}")
        raise permanent(550, f"5.1.2 the domain {domain} has no MX and no address records")
    hosts, failures = [], []
    for record in records:
        name = record.exchange.to_text(omit_final_dot=True)
        addresses, failure = addresses_of(resolver, name)
        if addresses:
            hosts.append((name, addresses))
        elif failure:
            failures.append(f"{name}: {failure}")
    if not hosts:  # perhaps a moment's trouble with the MX hosts' zone: retried, a notification once expired
        detail = "; ".join(failures) or "no address records"
        raise permanent(451, f"4.4.3 no MX host of {domain} has an address: {detail}")
    return hosts


def addresses_of(resolver: dns.resolver.Resolver, name: str) -> tuple[list[str], str]:
    """A then AAAA addresses of ``name``, and a temporary failure's description (if any)."""
    found: list[str] = []
    failure = ""
    for rdtype in ("A", "AAAA"):
        try:
            found += [r.address for r in resolver.resolve(name, rdtype)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            failure = failure or f"{rdtype} lookup timed out or failed ({exc.__class__.__name__})"
    return found, ("" if found else failure)


class MXSender:
    """Sends one domain's mail to its MX hosts; the same ``send`` as Connections, keyed by domain."""

    def __init__(self, smtp: Connections, settings: Settings | Any, conn: Any = None, names: Any = None) -> None:
        self.smtp = smtp
        typed = Settings.of(settings)
        config = typed.relay_config
        self.port = int(config.get("mx_port", 25))
        self.limit = typed.relay_domain_concurrency
        self.ttl = int(float(typed.relay_timeout) * 10) + 60
        self.conn = conn
        self.names = names
        if smtp.resolver is None:  # kept with the sessions: its cache outlives one job
            smtp.resolver = ldns.resolver(typed)
        self.resolver: dns.resolver.Resolver = smtp.resolver
        self.config = config

    def applies(self, host: str, port: int) -> bool:
        """A record for the default destination (or none) goes by MX; one naming another host does not."""
        default = (str(self.config.get("host") or ""), int(self.config.get("port") or 0))
        return not host or (host, port) == default

    def send(self, domain: str, port: int, mail_from: str, rcpt_tos: list[str], data: bytes,
             security: Security | None = None) -> dict[str, tuple[int, bytes]]:
        hosts = lookup(self.resolver, domain)
        slot = self.acquire(domain)
        try:
            last: Exception | None = None
            for name, addresses in hosts:
                for address in addresses:
                    try:
                        refused = self.smtp.send(name, self.port, mail_from, rcpt_tos, data, OPPORTUNISTIC,
                                                 address=address)
                    except smtplib.SMTPRecipientsRefused:
                        raise  # the host answered the transaction: it decides
                    except (SessionError, smtplib.SMTPConnectError) as exc:  # before the transaction
                        log.info("MX %s [%s]:%s of %s: %s; trying the next host", name, address, self.port,
                                 domain, exc)
                        last = exc
                        continue
                    except smtplib.SMTPResponseException:
                        raise  # the host answered the transaction: it decides
                    except OSError as exc:  # unreachable, reset, timed out (SMTPServerDisconnected too)
                        log.info("MX %s [%s]:%s of %s: %s; trying the next host", name, address, self.port,
                                 domain, exc)
                        last = exc
                        continue
                    log.info("sent to %s by its MX %s [%s]:%s", domain, name, address, self.port)
                    return refused
            assert last is not None
            raise OSError(f"no MX host of {domain} could be reached "
                          f"({', '.join(n for n, _ in hosts)}); last: {last}")
        finally:
            if slot:
                self.release(domain)

    def _key(self, domain: str) -> str:
        return str(self.names.key("relay", "domain", domain))

    def acquire(self, domain: str) -> bool:
        """A delivery slot for ``domain`` (False: not counted, Redis away or no limit)."""
        if self.limit <= 0 or self.conn is None or self.names is None:
            return False
        try:
            with self.conn.pipeline() as pipe:
                pipe.incr(self._key(domain))
                pipe.expire(self._key(domain), self.ttl)  # a worker that died holding slots: they expire
                count = int(pipe.execute()[0])
        except Exception as exc:  # Redis away: no limit rather than no mail
            log.debug("per-domain concurrency not counted for %s: %s", domain, exc)
            return False
        if count > self.limit:
            self.release(domain)
            raise permanent(451, f"4.4.5 already {self.limit} deliveries to {domain} at once "
                                 f"(relay_domain_concurrency); later")
        return True

    def release(self, domain: str) -> None:
        try:
            self.conn.decr(self._key(domain))
        except Exception as exc:
            log.debug("per-domain slot of %s not released (it expires): %s", domain, exc)


def split_by_domain(outbox: Any, spooled: Spooled, rcpts: list[str], conn: Any, names: Any) -> list[str]:
    """Recipients at several domains: each other domain gets an outbox file of its own (woken at
    once); returns the recipients of the first domain, which this delivery keeps."""
    groups: dict[str, list[str]] = {}
    for rcpt in rcpts:
        groups.setdefault(domain_of(rcpt), []).append(rcpt)
    if len(groups) < 2:
        return rcpts
    first, *others = groups.values()
    keys = [outbox.put(replace(spooled.envelope, rcpt_tos=tuple(group)), spooled.data) for group in others]
    log.info("%s split per domain: %s kept, %s", spooled.key, domain_of(first[0]),
             ", ".join(f"{domain_of(g[0])} as {k}" for g, k in zip(others, keys, strict=True)))
    try:
        queues.wake_relay(conn, names, keys)
    except Exception as exc:  # the sweeper finds them
        log.debug("no wake-up for %s: %s", keys, exc)
    return first
