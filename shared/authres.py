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
  ``pass`` when SPF or DKIM passed for a domain aligned with the From header's. A message
  whose From does not name exactly one author (two From fields, two addresses in one, a
  From no parser reads, an author without a domain) never passes (RFC 7489 §6.6.1, fail
  closed): every domain it names is looked up and the strictest policy found applies, with
  ``fail`` (so ``dmarc_reject_park`` parks it when one says p=reject), else ``permerror``
  (:func:`check_dmarc`). Relaxed
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

def _same_host(a: str, b: str) -> bool:
    """Two spellings of one host name: case, a trailing dot, quotes and U- or A-labels do not matter."""
    return bool(a) and _host_key(a) == _host_key(b)


def _host_key(name: str) -> str:
    name = name.strip().strip('"').strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _claimed_id(value: str) -> str | None:
    """The authserv-id an ``Authentication-Results`` value starts with, read as RFC 8601 §2.2 writes it
    (CFWS, then a token or a quoted string), linearly and whatever the comments nest; None if there is none.
    """
    i, n, depth = 0, len(value), 0
    while i < n:  # CFWS: white space and comments, nested, with quoted pairs
        ch = value[i]
        if ch == "\\" and depth:
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif not depth and not ch.isspace():
            break
        i += 1
    if i >= n:
        return None
    if value[i] == '"':
        out, i = [], i + 1
        while i < n and value[i] != '"':
            if value[i] == "\\":
                i += 1
            out.append(value[i:i + 1])
            i += 1
        return "".join(out)
    found = re.match(r'[^\s;()"]+', value[i:])
    return found.group(0) if found else None


def claims(value: str, authserv_id: str) -> bool:
    """True when an ``Authentication-Results`` value could be taken for one of ours.

    The authres package's RFC 8601 parser reads it first; what it cannot read
    (a quoted id, a trailing dot, comments nested past the recursion limit) is
    read by :func:`_claimed_id`, and a value neither reads is ours when it
    names our id anywhere: a reader downstream may be laxer than both, and an
    unreadable header claiming to be ours has no business in the message.
    """
    from lamson.mail import MAX_COMMENT_DEPTH, comment_depth

    flat = " ".join(value.split())
    parsed = None
    if comment_depth(flat) <= MAX_COMMENT_DEPTH:  # the package's parser recurses per comment level
        try:
            parsed = authres.AuthenticationResultsHeader.parse_value(flat)
            if _same_host(str(parsed.authserv_id), authserv_id):
                return True
        except Exception:  # noqa: BLE001 - a SyntaxError (a quoted id, a trailing dot...): read it ourselves
            parsed = None
    claimed = _claimed_id(flat)
    if claimed is not None and _same_host(claimed, authserv_id):
        return True
    if parsed is None:
        ours = re.escape(_host_key(authserv_id))
        return re.search(rf"(?<![\w.-]){ours}\.?(?![\w-])", flat.lower()) is not None
    return False


def strip_forged(data: bytes, authserv_id: str) -> bytes:
    """Remove every ``Authentication-Results`` header field that claims ``authserv_id`` (:func:`claims`)."""
    end = header_block_end(data)
    head, rest = (data, b"") if end is None else (data[:end], data[end:])
    fields: list[list[bytes]] = []
    for line in head.splitlines(keepends=True):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1].append(line)
        else:
            fields.append([line])
    kept = []
    for lines in fields:
        name, colon, value = b"".join(lines).partition(b":")
        if colon and name.strip().lower() == b"authentication-results":
            if claims(value.decode("utf-8", "replace"), authserv_id):
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


#: Distinct domains whose DMARC record is looked up for a From that does not name exactly one author;
#: a From naming more is treated as p=reject (no mail a person writes names more).
MAX_FROM_DOMAINS = 5
_LINE_END = re.compile(r"\r\n|\r|\n")  # the email parser's line ends, so no From hides after a bare CR
_FROM_FIELD = re.compile(r"(?i)from[ \t]*:")
_NAMED_DOMAIN = re.compile(r"@[ \t]*\[?([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+)")


def from_fields(data: bytes) -> list[str]:
    """The raw values of every From field in the header block (white space before the colon allowed)."""
    end = header_block_end(data)
    head = (data if end is None else data[:end]).decode("utf-8", "replace")
    values: list[list[str]] = []
    inside = False
    for line in _LINE_END.split(head):
        if line[:1] in (" ", "\t"):
            if inside:
                values[-1].append(line)
            continue
        found = _FROM_FIELD.match(line)
        inside = found is not None
        if found:
            values.append([line[found.end():]])
    return [" ".join(lines) for lines in values]


def _dns_name(domain: str) -> str | None:
    domain = domain.strip().lower().rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return domain if _safe_domain(domain) else None


def from_authors(data: bytes) -> tuple[str | None, list[str], str]:
    """The From author's domain, or why there is not exactly one, and every domain the From names.

    ``(domain, [domain], "")`` for one author with a domain; else ``(None, domains, problem)``:
    the authors' domains when each From field was read, every domain named anywhere in them when
    one was not (comments nested past :data:`lamson.mail.MAX_COMMENT_DEPTH`, a parser error).
    Read with lamson.mail's parser, so DMARC judges the author ``message.addresses("from")`` gives.
    """
    from lamson.mail import MAX_COMMENT_DEPTH, address_pairs, comment_depth

    values = from_fields(data)
    if not values:
        return None, [], "no From header"
    named = list(dict.fromkeys(m.lower().rstrip(".") for v in values for m in _NAMED_DOMAIN.findall(v)))
    authors: list[str] = []
    for value in values:
        if comment_depth(value) > MAX_COMMENT_DEPTH:
            return None, named, f"From header unreadable (comments nested {comment_depth(value)} deep)"
        pairs = [address for _, address in address_pairs("from", value) if address]
        if not pairs:
            return None, named, "From header unreadable (no address in it)"
        authors.extend(pairs)
    domains = [_dns_name(address.rpartition("@")[2]) if "@" in address else None for address in authors]
    if None in domains:
        return None, named, f"From author without a domain name ({len(authors)} author(s))"
    found = [d for d in dict.fromkeys(domains) if d]
    if len(authors) > 1:
        fields = f"{len(values)} From fields" if len(values) > 1 else "one From field"
        return None, found, f"{len(authors)} From authors in {fields} (RFC 7489 6.6.1)"
    return found[0], found, ""


def _from_domain(data: bytes) -> str | None:
    """The domain of the single From author (None: no From, several, unreadable, or no domain)."""
    return from_authors(data)[0]


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


def _policy_record(domain: str, lookups: _Lookups) -> tuple[dict[str, str] | None, str]:
    """The DMARC record for ``domain`` (else its organizational domain's) and the policy it sets for it."""
    record = _dmarc_record(domain, lookups)
    subdomain = False
    if record is None and organizational(domain) != domain:
        record = _dmarc_record(organizational(domain), lookups)
        subdomain = record is not None
    if record is None:
        return None, ""
    return record, record.get("sp" if subdomain and "sp" in record else "p", "")


_STRICTNESS = {"reject": 3, "quarantine": 2, "none": 1}


def _unclear_author(results: AuthResults, domains: list[str], problem: str, lookups: _Lookups) -> None:
    """DMARC of a From that does not name exactly one author: never a pass (RFC 7489 §6.6.1).

    Each named domain's policy is looked up and the strictest applies: ``fail``
    with that policy (``dmarc_reject_park`` parks it when it is p=reject, like
    any p=reject fail); ``permerror`` when no domain has a record (nothing to
    enforce, and still nobody verified); ``temperror`` when a lookup failed and
    no other domain gave a policy. A From naming more than
    :data:`MAX_FROM_DOMAINS` domains is treated as p=reject without looking.
    """
    results.reason = f"DMARC: {problem}"
    if len(domains) > MAX_FROM_DOMAINS:
        results.dmarc, results.dmarc_policy, results.from_domain = "fail", "reject", domains[0]
        results.reason += f"; {len(domains)} domains named: treated as p=reject"
        return
    strictest: tuple[int, str, str] = (0, "", "")
    failed: DNSTempError | None = None
    for domain in domains:
        try:
            _, policy = _policy_record(domain, lookups)
        except DNSTempError as exc:
            failed = exc
            continue
        strictest = max(strictest, (_STRICTNESS.get(policy, 0), policy, domain))
    if strictest[0]:
        results.dmarc, results.dmarc_policy, results.from_domain = "fail", strictest[1], strictest[2]
        results.reason += f"; strictest policy p={strictest[1]} ({strictest[2]})"
    elif failed is not None:
        results.dmarc = "temperror"
        results.reason += f"; {failed}"
    else:
        results.dmarc = "permerror"


def check_dmarc(results: AuthResults, data: bytes, lookups: _Lookups) -> None:
    domain, named, problem = from_authors(data)
    if domain is None:
        _unclear_author(results, named, problem, lookups)
        return
    results.from_domain = domain
    try:
        record, policy = _policy_record(domain, lookups)
    except DNSTempError as exc:
        results.dmarc, results.reason = "temperror", f"DMARC: {exc}"
        return
    if record is None:
        results.dmarc = "none"
        return
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
