"""Sender authentication of incoming mail: SPF, DKIM and DMARC, as handlers read them.

A router worker computes this once per message, before routing (``workers/jobs.py``), and
handlers read it as ``message.auth`` (an :class:`AuthResults`) and as the
``Authentication-Results`` header (RFC 8601) put on top of the message they see::

    if message.auth.dmarc == "fail" and message.auth.dmarc_policy == "reject": ...
    if message.auth.spf == "pass": ...

* **SPF** (pyspf): the envelope sender (or the HELO name for the null sender ``<>``) and the
  connecting IP (the envelope's ``peer``). No peer IP, or a loopback one (another MTA on this
  host handed the message over): ``none``.
* **DKIM** (dkimpy): every ``DKIM-Signature`` (at most :data:`MAX_SIGNATURES`) over the
  bytes as received; ``pass`` when one verifies.
* **DMARC**: the ``_dmarc.<From domain>`` TXT record (else the organizational domain's),
  ``pass`` when SPF or DKIM passed for a domain aligned with the From header's. Relaxed
  alignment compares *organizational domains*, which this module approximates by the last
  two labels of a name (no Public Suffix List: ``a.example.co.uk`` and ``b.other.co.uk`` both
  count as ``co.uk``, so relaxed alignment is looser than RFC 7489 under such suffixes).

Every DNS lookup goes through :func:`lamson.dns.resolver` (``dns_config``; pyspf and dkimpy
are pointed at it too), each bounded by its timeout and the whole message by ``auth_timeout``.
A DNS failure or timeout gives ``temperror``, never an exception: mail is routed all the same.
After a timeout, the same DNS servers are not asked again for :data:`DOWN_FOR` seconds (their
results are ``temperror`` at once), so a worker without DNS does not wait on every message.
"""

from __future__ import annotations

import contextvars
import errno
import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import Any

import authres
import authres.dmarc
import dkim
import dns.exception
import dns.message
import dns.rcode
import dns.resolver
import spf

from lamson.dns import resolver as make_resolver
from lamson.encoding import header_block_end
from lamson.typed_settings import Settings

log = logging.getLogger("lamson.authres")

#: DKIM signatures verified per message at most (each may cost a lookup).
MAX_SIGNATURES = 5
#: Seconds DNS servers that timed out are left alone (their answers are temperror meanwhile).
DOWN_FOR = 30.0

_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")
_down: dict[tuple[Any, ...], float] = {}
_down_lock = threading.Lock()


#: What sending to a name server fails with when this host has no network to reach it at all.
_NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL,
                       getattr(errno, "ENONET", errno.ENETUNREACH)})


class DNSTempError(Exception):
    """A lookup timed out, the servers failed, or the message's time is used up.

    ``no_dns``: there is no DNS at all (no name server configured, or no route to any of
    them), the usual state of a development machine or sandbox rather than news.
    """

    def __init__(self, text: str, *, no_dns: bool = False) -> None:
        super().__init__(text)
        self.no_dns = no_dns


def _server_errors(exc: dns.resolver.NoNameservers) -> list[tuple[str, Any]]:
    """(server, what it answered or raised) for each name server a failed query tried."""
    found = []
    for entry in exc.kwargs.get("errors") or []:
        if isinstance(entry, tuple) and len(entry) >= 4:
            found.append((str(entry[0]), entry[3] if entry[3] is not None else entry[-1]))
    return found


def _unreachable(exc: Exception) -> bool:
    """True when a failed query never reached a name server for want of one or of a route to it."""
    if isinstance(exc, dns.resolver.NoNameservers):
        errors = _server_errors(exc)
        return all(isinstance(e, OSError) and e.errno in _NO_ROUTE for _, e in errors)  # none tried: none known
    return isinstance(exc, OSError) and exc.errno in _NO_ROUTE


def _short(exc: Exception) -> str:
    """A failed query in a few words: dnspython's own text repeats the query and every server's answer."""
    if isinstance(exc, dns.resolver.NoNameservers):
        errors = _server_errors(exc)
        if not errors:
            return "no DNS servers configured"
        server, what = errors[0]
        if isinstance(what, OSError):
            text = what.strerror or str(what)
        elif isinstance(what, dns.message.Message):
            text = dns.rcode.to_text(what.rcode())
        else:
            text = str(what)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{server.removeprefix('Do53:')}: {text[:80]}{more}"
    return str(exc)[:120]


@dataclass
class AuthResults:
    """What sender authentication found for one message (RFC 8601 result names)."""

    authserv_id: str
    spf: str = "none"
    spf_domain: str = ""
    dkim: str = "none"
    #: The d= domains of the DKIM signatures that verified.
    dkim_domains: list[str] = field(default_factory=list)
    dmarc: str = "none"
    #: The policy of the From domain's DMARC record ("none", "quarantine", "reject"), "" without one.
    dmarc_policy: str = ""
    from_domain: str = ""
    mail_from: str = ""
    helo: str = ""
    #: Why a result is temperror/permerror (for logs), else "".
    reason: str = ""
    #: The temperrors came from having no DNS at all (no name server configured, no route to any):
    #: a development machine's normal state, which the router logs at DEBUG level, not per message.
    no_dns: bool = False

    @property
    def header(self) -> str:
        """The ``Authentication-Results`` header field (name included, folded, no line end)."""
        results: list[Any] = []
        spf_props = {}
        if self.mail_from and _safe_address(self.mail_from):
            spf_props["smtp_mailfrom"] = self.mail_from
        if self.helo and _safe_domain(self.helo):
            spf_props["smtp_helo"] = self.helo
        results.append(authres.SPFAuthenticationResult(result=self.spf, **spf_props))
        if self.dkim_domains:
            results.extend(authres.DKIMAuthenticationResult(result="pass", header_d=d) for d in self.dkim_domains)
        else:
            results.append(authres.DKIMAuthenticationResult(result=self.dkim))
        dmarc_props = {}
        if self.from_domain and _safe_domain(self.from_domain):
            dmarc_props["header_from"] = self.from_domain
        if self.dmarc_policy:
            dmarc_props["policy"] = self.dmarc_policy
        results.append(authres.dmarc.DMARCAuthenticationResult(result=self.dmarc, **dmarc_props))
        text = str(authres.AuthenticationResultsHeader(authserv_id=self.authserv_id, results=results))
        return text.replace("; ", ";\r\n\t")

    def stamp(self, data: bytes) -> bytes:
        """``data`` with this header on top and any ``Authentication-Results`` claiming our id removed."""
        return self.header.encode("ascii", "replace") + b"\r\n" + strip_forged(data, self.authserv_id)


def _safe_domain(value: str) -> bool:
    return bool(_DOMAIN.match(value))


def _safe_address(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return bool(at) and _safe_domain(domain) and re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}", local) is not None


# -- forged headers (RFC 8601 §5) --------------------------------------------

_COMMENT = re.compile(rb"\([^()]*\)")


def strip_forged(data: bytes, authserv_id: str) -> bytes:
    """Remove every ``Authentication-Results`` header field whose authserv-id is ``authserv_id``."""
    end = header_block_end(data)
    head, rest = (data, b"") if end is None else (data[:end], data[end:])
    fields: list[list[bytes]] = []
    for line in head.splitlines(keepends=True):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1].append(line)
        else:
            fields.append([line])
    ours = authserv_id.lower().encode("ascii", "replace")
    kept = []
    for lines in fields:
        name, colon, value = b"".join(lines).partition(b":")
        if colon and name.strip().lower() == b"authentication-results":
            value = value.replace(b"\r", b" ").replace(b"\n", b" ")
            for _ in range(3):
                value = _COMMENT.sub(b" ", value)
            claimed = re.split(rb"[;\s]", value.strip(), maxsplit=1)[0].lower()
            if claimed == ours:
                continue
        kept.extend(lines)
    return b"".join(kept) + rest


# -- DNS, bounded ------------------------------------------------------------

class _Lookups:
    """One message's DNS: the resolver from settings, a deadline, and the servers' down marker."""

    def __init__(self, settings: Settings, limit: float) -> None:
        try:
            self.resolver = make_resolver(settings)
        except dns.resolver.NoResolverConfiguration:  # no resolv.conf, or no name server in it
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = []
        self.deadline = time.monotonic() + limit
        self.key = (tuple(self.resolver.nameservers), self.resolver.port)
        #: A lookup failed for want of any DNS (DNSTempError.no_dns).
        self.no_dns = False

    def txt(self, name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in self.query(name, "TXT")]

    def query(self, name: str, qtype: str) -> list[Any]:
        now = time.monotonic()
        with _down_lock:
            if _down.get(self.key, 0.0) > now:
                raise DNSTempError("DNS servers timed out recently")
        remaining = self.deadline - now
        if remaining <= 0:
            raise DNSTempError("time limit of the checks used up")
        try:
            answer = self.resolver.resolve(name, qtype, lifetime=min(self.resolver.lifetime, remaining),
                                           search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout as exc:
            with _down_lock:
                _down[self.key] = time.monotonic() + DOWN_FOR
            raise DNSTempError(f"DNS timeout ({name} {qtype})") from exc
        except (dns.resolver.NoNameservers, dns.resolver.YXDOMAIN, dns.exception.DNSException, OSError) as exc:
            if _unreachable(exc):
                self.no_dns = True
                raise DNSTempError(f"no DNS ({_short(exc)})", no_dns=True) from exc
            raise DNSTempError(f"DNS error ({name} {qtype}): {_short(exc)}") from exc
        return list(answer)


_current: contextvars.ContextVar[_Lookups | None] = contextvars.ContextVar("lamson_authres_dns", default=None)
_spf_original: Callable[..., Any] | None = None


def _spf_lookup(name: str, qtype: str, tcpfallback: bool = True, timeout: float = 30) -> list[Any]:
    """pyspf's DNS hook (``spf.DNSLookup``): our resolver while :func:`check` runs, pyspf's own otherwise."""
    lookups = _current.get()
    if lookups is None:
        assert _spf_original is not None
        return list(_spf_original(name, qtype, tcpfallback, timeout))
    try:
        answers = lookups.query(name, qtype)
    except DNSTempError as exc:
        raise spf.TempError(str(exc)) from exc
    out: list[Any] = []
    for rdata in answers:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            out.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            out.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), rdata.strings))
    return out


def _install_spf_hook() -> None:
    global _spf_original
    if _spf_original is None:
        _spf_original = spf.DNSLookup
        spf.DNSLookup = _spf_lookup


# -- the checks ----------------------------------------------------------------

def organizational(domain: str) -> str:
    """The organizational domain, approximated by the last two labels (see the module's docs)."""
    labels = domain.lower().rstrip(".").split(".")
    return ".".join(labels[-2:])


def _aligned(domain: str, from_domain: str, strict: bool) -> bool:
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if strict:
        return domain == from_domain
    return organizational(domain) == organizational(from_domain)


def _peer_ip(peer: Any) -> str | None:
    """The IP of an envelope peer ("IP:port", "[v6]:port", a (host, port) tuple, or a bare IP)."""
    if isinstance(peer, tuple | list) and peer:
        peer = peer[0]
    text = str(peer or "").strip()
    # The receiver writes "IP:port" (an IPv6 address unbracketed: "2001:db8::1:40001"), so the
    # part before the last colon is tried first; then the whole text (a bare address).
    candidates = [text[1:].split("]", 1)[0]] if text.startswith("[") else [text.rsplit(":", 1)[0], text]
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def check_spf(results: AuthResults, ip: str | None, lookups: _Lookups, limit: float) -> None:
    sender = results.mail_from or (f"postmaster@{results.helo}" if results.helo else "")
    results.spf_domain = sender.rpartition("@")[2].lower()
    if ip is None or not results.spf_domain:
        results.spf = "none"
        return
    if ipaddress.ip_address(ip).is_loopback:
        # Another MTA on this host handed it over (Postfix in front): SPF of that hop means nothing.
        results.spf, results.reason = "none", "SPF: not checked for a loopback peer"
        return
    _install_spf_hook()
    token = _current.set(lookups)
    try:
        query = spf.query(i=ip, s=sender, h=results.helo or results.spf_domain,
                          timeout=max(0.1, lookups.resolver.lifetime), querytime=max(0.1, limit))
        outcome = query.check()[0]
    except Exception as exc:  # noqa: BLE001 - pyspf raising on odd input is a permerror, not a lost message
        results.spf, results.reason = "permerror", f"SPF: {exc}"
        return
    finally:
        _current.reset(token)
    results.spf = {"error": "temperror", "unknown": "permerror", "ambiguous": "permerror"}.get(outcome, outcome)


def _dkim_signatures(data: bytes) -> int:
    end = header_block_end(data)
    head = data if end is None else data[:end]
    return len(re.findall(rb"(?im)^dkim-signature\s*:", head))


def check_dkim(results: AuthResults, data: bytes, lookups: _Lookups) -> None:
    count = _dkim_signatures(data)
    if not count:
        results.dkim = "none"
        return

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        found = lookups.txt(name.decode("ascii", "replace").rstrip("."))
        return found[0] if found else None

    outcomes = []
    for idx in range(min(count, MAX_SIGNATURES)):
        verifier = dkim.DKIM(data, minkey=1024, timeout=lookups.resolver.lifetime,
                             logger=logging.getLogger("lamson.authres.dkim"))
        try:
            ok = verifier.verify(idx=idx, dnsfunc=dnsfunc)
        except DNSTempError as exc:
            outcomes.append("temperror")
            results.reason = f"DKIM: {exc}"
            continue
        except dkim.ValidationError as exc:  # e.g. the body hash does not match
            outcomes.append("fail")
            results.reason = f"DKIM: {exc}"
            continue
        except dkim.DKIMException as exc:
            outcomes.append("permerror")
            results.reason = f"DKIM: {exc}"
            continue
        except Exception as exc:  # noqa: BLE001 - a malformed signature must not lose the message
            outcomes.append("permerror")
            results.reason = f"DKIM: {type(exc).__name__}: {exc}"
            continue
        if ok:
            outcomes.append("pass")
            domain = (verifier.domain or b"").decode("ascii", "replace").lower()
            if _safe_domain(domain) and domain not in results.dkim_domains:
                results.dkim_domains.append(domain)
        else:
            outcomes.append("fail")
    for result in ("pass", "temperror", "fail", "permerror"):
        if result in outcomes:
            results.dkim = result
            return


def _from_domain(data: bytes) -> str | None:
    """The domain of the single From address (None: no From, several, or no domain)."""
    end = header_block_end(data)
    head = (data if end is None else data[:end]).decode("utf-8", "replace")
    values = [m.group(1) for m in re.finditer(r"(?ims)^from[ \t]*:(.*?)(?=\r?\n(?![ \t])|\Z)", head)]
    addresses = [addr for _, addr in getaddresses(values) if addr]
    if len(addresses) != 1:
        return None
    domain = addresses[0].rpartition("@")[2].strip().lower().rstrip(".")
    return domain if _safe_domain(domain) else None


def _dmarc_record(domain: str, lookups: _Lookups) -> dict[str, str] | None:
    for txt in lookups.txt(f"_dmarc.{domain}"):
        text = txt.decode("utf-8", "replace")
        if not text.lower().startswith("v=dmarc1"):
            continue
        tags = {}
        for part in text.split(";"):
            key, eq, value = part.partition("=")
            if eq:
                tags[key.strip().lower()] = value.strip().lower()
        return tags
    return None


def check_dmarc(results: AuthResults, data: bytes, lookups: _Lookups) -> None:
    domain = _from_domain(data)
    if domain is None:
        results.dmarc = "none"
        return
    results.from_domain = domain
    try:
        record = _dmarc_record(domain, lookups)
        subdomain = False
        if record is None and organizational(domain) != domain:
            record = _dmarc_record(organizational(domain), lookups)
            subdomain = record is not None
    except DNSTempError as exc:
        results.dmarc, results.reason = "temperror", f"DMARC: {exc}"
        return
    if record is None:
        results.dmarc = "none"
        return
    policy = record.get("sp" if subdomain and "sp" in record else "p", "")
    if policy not in ("none", "quarantine", "reject"):
        results.dmarc = "permerror"
        return
    results.dmarc_policy = policy
    spf_ok = results.spf == "pass" and _aligned(results.spf_domain, domain, record.get("aspf") == "s")
    dkim_ok = any(_aligned(d, domain, record.get("adkim") == "s") for d in results.dkim_domains)
    if spf_ok or dkim_ok:
        results.dmarc = "pass"
    elif results.spf == "temperror" or results.dkim == "temperror":
        results.dmarc = "temperror"  # a lookup that failed might have passed
    else:
        results.dmarc = "fail"


def authserv_id(settings: Settings | Any) -> str:
    """The name in our Authentication-Results: ``authserv_id``, else ``receiver_hostname``, else the host's."""
    typed = Settings.of(settings)
    return str(typed.authserv_id or typed.receiver_hostname or socket.getfqdn() or "localhost")


def check(data: bytes, *, peer: Any, mail_from: str, helo: str = "", settings: Settings | Any = None,
          limit: float | None = None) -> AuthResults:
    """SPF, DKIM and DMARC of one message; never raises, bounded by ``limit`` (``auth_timeout``).

    Called per message: a caller that passes the process's Settings (not the module) saves
    building the typed view each time (lamson.typed_settings).
    """
    typed = Settings.of(settings)
    if limit is None:
        limit = float(typed.auth_timeout)
    results = AuthResults(authserv_id=authserv_id(typed), mail_from=(mail_from or "").lower(),
                          helo=(helo or "").strip().lower())
    try:
        lookups = _Lookups(typed, limit)
        check_spf(results, _peer_ip(peer), lookups, limit)
        check_dkim(results, data, lookups)
        check_dmarc(results, data, lookups)
    except Exception as exc:  # noqa: BLE001 - authentication never blocks mail
        log.exception("sender authentication failed")
        results.reason = f"{type(exc).__name__}: {exc}"
        for name in ("spf", "dkim", "dmarc"):
            if getattr(results, name) == "none":
                setattr(results, name, "temperror")
        return results
    results.no_dns = lookups.no_dns and "temperror" in (results.spf, results.dkim, results.dmarc)
    return results
