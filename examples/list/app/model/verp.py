"""VERP: a return path per member, so a bounce names the member it is about.

Each member's copy of a post leaves with the envelope sender
``LIST-bounce+LOCAL=DOMAIN@HOST``; a bounce goes to that address, and the
handler reads the member back from it instead of guessing from the bounce's
text (which many servers word their own way).

The member's address is bare and lowercased (as stored), then written as:

* ``a``-``z``, ``0``-``9``, ``.``, ``_`` and ``-`` as themselves;
* the ``@`` between local part and domain as ``=`` (there is exactly one);
* every other octet of its UTF-8 form as ``+`` and two lowercase hex digits
  (``+`` itself is ``+2b``, ``=`` is ``+3d``, a space ``+20``).

So the result is plain ASCII in the set ``[a-z0-9._=+-]``, needs no quoting in
SMTP, matches the route ``(list)-bounce\\+(verp)`` whatever the member's
address holds (quoted local parts, ``+`` tags, UTF-8), and decodes to exactly
the stored address. The router lowercases the recipient before routing,
which is why the hex digits are lowercase. A long member address can make a
local part over RFC 5321's 64 octets; common MTAs (Postfix, Exim) accept it.
"""

from __future__ import annotations

import re

from lamson.confirm import normal_address

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._-")
_ENCODED = re.compile(r"^[a-z0-9._+-]+=[a-z0-9._+-]+$")


def _escape(text: str) -> str:
    return "".join(chr(b) if b in _PLAIN else f"+{b:02x}" for b in text.encode("utf-8"))


def _unescape(text: str) -> str:
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "+":
            pair = text[i + 1:i + 3]
            if len(pair) != 2 or not re.fullmatch(r"[0-9a-f]{2}", pair):
                raise ValueError(f"bad escape {text[i:i + 3]!r} in a VERP address")
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(ord(text[i]))
            i += 1
    return out.decode("utf-8")


def encode(member: str) -> str:
    """``Alice+tag@Example.org`` → ``alice+2btag=example.org``."""
    address = normal_address(member)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an address: {member!r}")
    return f"{_escape(local)}={_escape(domain)}"


def decode(text: str) -> str:
    """The member address from the part after ``bounce+``; ValueError if it is not one we made."""
    text = text.lower()
    if not _ENCODED.match(text):
        raise ValueError(f"not a VERP-encoded address: {text!r}")
    local, _, domain = text.partition("=")
    return f"{_unescape(local)}@{_unescape(domain)}"


def return_path(list_name: str, member: str, host: str) -> str:
    """The envelope sender of ``member``'s copy: ``LIST-bounce+LOCAL=DOMAIN@HOST``."""
    return f"{list_name}-bounce+{encode(member)}@{host}"
