"""What the receiver checks before it says 250: pure functions, cheap on the hot path.

Everything here runs once per command or once per message inside the
receiver's event loop, so each check is linear in what it looks at: an
address is matched by one anchored regular expression after a length check,
a served domain is a set lookup (or a few anchored regexes from settings),
and the ``Received`` count reads the header block only.

The address grammar is RFC 5321's ``Path`` (4.1.2), with UTF-8 allowed in
local parts and domain labels (RFC 6531, the receiver offers SMTPUTF8), minus
the forms that only ever serve to bounce mail somewhere else: source routes
(``<@a,@b:user@c>``), the ``%`` hack and ``!`` bang paths in the local part,
and quoted local parts hiding an ``@``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from lamson.typed_settings import Settings

#: RFC 5321 4.5.3.1: octets in a local part, a domain, and a whole path with its brackets.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256

#: Non-ASCII code points an address may not contain, even with SMTPUTF8: C1 controls,
#: non-ASCII spaces, the bidirectional controls (U+202E RIGHT-TO-LEFT OVERRIDE makes
#: ``moc.elpmaxe@evil`` read differently from what it routes to) and other invisible
#: format characters, line/paragraph separators, and the surrogates that stand for
#: undecodable octets (aiosmtpd decodes with surrogateescape).
_FORBIDDEN_RANGES = (
    (0x80, 0xA0),        # C1 controls, NO-BREAK SPACE
    (0x61C, 0x61C),      # ARABIC LETTER MARK
    (0x1680, 0x1680),    # OGHAM SPACE MARK
    (0x180E, 0x180E),    # MONGOLIAN VOWEL SEPARATOR
    (0x2000, 0x200F),    # spaces, zero-width characters, LRM, RLM
    (0x2028, 0x202F),    # line/paragraph separators, LRE RLE PDF LRO RLO, narrow NBSP
    (0x205F, 0x206F),    # math space, word joiner, invisible operators, LRI RLI FSI PDI, deprecated
    (0x3000, 0x3000),    # IDEOGRAPHIC SPACE
    (0xD800, 0xDFFF),    # surrogates
    (0xFEFF, 0xFEFF),    # ZERO WIDTH NO-BREAK SPACE (BOM)
    (0xFFF9, 0xFFFB),    # interlinear annotation controls
)


def _class_range(low: int, high: int) -> str:
    return f"\\U{low:08x}" if low == high else f"\\U{low:08x}-\\U{high:08x}"


def _allowed_non_ascii() -> str:
    """The complement of ``_FORBIDDEN_RANGES`` in U+0080..U+10FFFF, as a character-class body."""
    parts, start = [], 0x80
    for low, high in _FORBIDDEN_RANGES:
        if start < low:
            parts.append(_class_range(start, low - 1))
        start = high + 1
    parts.append(_class_range(start, 0x10FFFF))
    return "".join(parts)


#: Non-ASCII text allowed in addresses (RFC 6531 UTF-8, minus ``_FORBIDDEN_RANGES``).
_UTF8 = _allowed_non_ascii()
#: The forbidden characters a client meant to send (surrogates are undecodable input: "malformed").
_FORBIDDEN = re.compile("[" + "".join(_class_range(low, high) for low, high in _FORBIDDEN_RANGES
                                      if low != 0xD800) + "]")
_ATEXT = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_UTF8}]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
# qtextSMTP (%d32-33 / %d35-91 / %d93-126) or quoted-pairSMTP (backslash + %d32-126).
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8}]|\\[\x20-\x7e])*"'
_LETDIG = rf"[A-Za-z0-9{_UTF8}]"
_LABEL = rf"{_LETDIG}(?:[A-Za-z0-9\-{_UTF8}]*{_LETDIG})?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_LITERAL = r"\[[A-Za-z0-9:.\-]+\]"
_MAILBOX = rf"(?P<local>{_DOT_STRING}|{_QUOTED})@(?P<domain>{_DOMAIN}|{_LITERAL})"

_ANGLED = re.compile(rf"<(?:{_MAILBOX}|(?P<postmaster>[Pp][Oo][Ss][Tt][Mm][Aa][Ss][Tt][Ee][Rr])|)>(?P<rest>(?:[ \t].*)?)", re.S)
_BARE = re.compile(rf"{_MAILBOX}(?P<rest>(?:[ \t].*)?)", re.S)

#: The null reverse-path, as aiosmtpd reports ``MAIL FROM:<>``.
NULL_PATH = "<>"


@dataclass(frozen=True)
class Path:
    """A parsed MAIL FROM / RCPT TO argument."""

    #: ``local@domain``, ``<>`` for the null path, or ``postmaster`` as the client spelled it.
    address: str
    #: The ESMTP parameters after the path (``SIZE=123 BODY=8BITMIME``), unparsed.
    rest: str


class BadPath(ValueError):
    """The argument is not an address this receiver accepts; the text says why."""


def parse_path(arg: str) -> Path:
    """Parse the argument of MAIL FROM: or RCPT TO: (after the colon) strictly.

    Angle brackets are expected; a bare ``local@domain`` is tolerated as most
    servers do. Raises :class:`BadPath` for anything else.
    """
    arg = arg.strip(" \t")
    head = arg.split(" ", 1)[0]
    if len(head) > MAX_PATH:  # cheap early cap: the path (with its brackets) comes first
        raise BadPath("path longer than 256 octets")
    if arg.startswith("<@"):
        raise BadPath("source routes are not accepted")
    if not head.isascii() and _FORBIDDEN.search(head):
        raise BadPath("control, bidirectional or invisible character in the address")
    match = _ANGLED.fullmatch(arg) if arg.startswith("<") else _BARE.fullmatch(arg)
    if match is None:
        raise BadPath("malformed address")
    rest = match["rest"].strip(" \t")
    if match.re is _ANGLED and match["local"] is None:
        return Path(match["postmaster"] or NULL_PATH, rest)
    local, domain = match["local"], match["domain"]
    local_octets = len(local.encode("utf-8", "surrogateescape"))
    domain_octets = len(domain.encode("utf-8", "surrogateescape"))
    if local_octets > MAX_LOCAL_PART:
        raise BadPath("local part longer than 64 octets")
    if domain_octets > MAX_DOMAIN:
        raise BadPath("domain longer than 255 octets")
    if local_octets + domain_octets + 3 > MAX_PATH:
        raise BadPath("path longer than 256 octets")
    text = local[1:-1].replace("\\", "") if local.startswith('"') else local
    if "@" in text:
        raise BadPath("quoted local part contains @")
    if "%" in text or "!" in text:
        raise BadPath("% and ! routing in the local part is not accepted")
    if domain.startswith("[") and not _literal_ok(domain[1:-1]):
        raise BadPath("malformed address literal")
    if any(len(label) > 63 for label in domain.split(".")):
        raise BadPath("domain label longer than 63 octets")
    return Path(f"{local}@{domain}", rest)


def _literal_ok(text: str) -> bool:
    """An IPv4 literal or an ``IPv6:`` one (RFC 5321 4.1.3); general literals are refused."""
    try:
        if text[:5].upper() == "IPV6:":
            ipaddress.IPv6Address(text[5:])
        else:
            ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def is_postmaster(address: str) -> bool:
    """The domainless ``postmaster`` every SMTP server must accept (RFC 5321 4.5.1)."""
    return address.lower() == "postmaster"


_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9.\-]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """``text`` with A-Z lowered and nothing else touched.

    ``str.lower`` and ``re.IGNORECASE`` fold Unicode too: U+212A KELVIN SIGN
    lowers to ``k``, and under IGNORECASE dotless ``ı`` matches ``i`` and long
    ``ſ`` matches ``s``, so ``lısts.example.com`` would pass for
    ``lists.example.com``. Domain names compare case-insensitively in ASCII
    only (RFC 4343); IDN labels are compared as written.
    """
    return text.translate(_ASCII_LOWER)


class ServedDomains:
    """The domains the application receives mail for; anything else is relaying.

    Entries made of letters, digits, dots and hyphens are domains compared
    exactly (case-insensitively); any other entry is a regular expression that
    must match the whole domain, e.g. ``r"(.+\\.)?example\\.com"``. Case is
    folded in ASCII only (:func:`ascii_lower`, ``re.ASCII``), so no Unicode
    look-alike of a served name is served.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entries)
        self.names = frozenset(ascii_lower(e) for e in self.entries if _PLAIN_DOMAIN.fullmatch(e))
        self.patterns = tuple(re.compile(e, re.I | re.A) for e in self.entries if not _PLAIN_DOMAIN.fullmatch(e))

    def serves(self, domain: str) -> bool:
        """True when mail for ``domain`` is the application's own."""
        lowered = ascii_lower(domain)
        return lowered in self.names or any(p.fullmatch(lowered) for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __repr__(self) -> str:
        return f"ServedDomains({list(self.entries)!r})"


def served_domains(settings: Settings | ModuleType) -> ServedDomains:
    """``served_domains`` from settings, else the routes' ``router_defaults["host"]`` regex.

    Only the settings are read: the receiver never imports application code.
    With neither set the result serves nothing, and every recipient but
    ``postmaster`` is refused (a receiver that accepts any domain is an open door).
    """
    typed = Settings.of(settings)
    entries: Any = typed.served_domains  # a str is taken for a list of one, other types refused below
    if isinstance(entries, str):
        entries = [entries]
    if not entries:
        host = (typed.router_defaults or {}).get("host")
        entries = [host] if host else []
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise ValueError(f"served_domains entries must be non-empty strings, not {entry!r}")
        try:
            re.compile(entry)
        except re.error as exc:
            raise ValueError(f"served_domains entry {entry!r} is not a valid regular expression: {exc}") from exc
    return ServedDomains(entries)


_RECEIVED = re.compile(rb"(?:^|\n)received[ \t]*:", re.I)


def header_block(data: bytes) -> bytes:
    """The header section of a message (everything before the first empty line)."""
    if data.startswith(b"\r\n") or data.startswith(b"\n"):
        return b""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    return data if end < 0 else data[:end]


def count_received(data: bytes) -> int:
    """How many ``Received:`` trace headers the message carries (header block only)."""
    return len(_RECEIVED.findall(header_block(data)))


_EOL = re.compile(rb"\r\n|\r|\n")


def normalise_line_endings(data: bytes) -> bytes:
    """Every line ends in CRLF: a bare CR or LF becomes CRLF.

    The common case (already clean) costs three counts in C and no copy.
    """
    crlf = data.count(b"\r\n")
    if data.count(b"\n") == crlf and data.count(b"\r") == crlf:
        return data
    return _EOL.sub(b"\r\n", data)
