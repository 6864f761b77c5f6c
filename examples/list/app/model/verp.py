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
which is why the hex digits are lowercase.

Signed: anyone can send a bounce to any return path, so a return path that
only named the member would let a stranger disable every member with three
forged bounces. Each return path carries a tag after a second ``=``:
``LIST-bounce+LOCAL=DOMAIN=TAG@HOST``, the first 60 bits of an HMAC-SHA256
of the list and the member address, in lowercase base32 (12 characters), keyed
by a secret that config/boot.py generates once into ``run/verp.key`` (mode
0600, written atomically, read by every process of the application, as the
Redis password is). A bounce whose tag does not verify — none (a return path
from before tags), a wrong one, one made for another member or list — is
ignored and logged. The tag adds 13 octets to the local part; for addresses
of common length it stays within RFC 5321's 64 octets, and a long member
address can make it longer, which common MTAs (Postfix, Exim) accept.
Guessing a tag is one SMTP message per guess against 2**60 possibilities.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

from lamson.confirm import normal_address
from lamson.connection import ensure_password

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._-")
_ENCODED = re.compile(r"^[a-z0-9._+-]+=[a-z0-9._+-]+$")
_SIGNED = re.compile(r"^(?P<member>[a-z0-9._+-]+=[a-z0-9._+-]+)=(?P<tag>[a-z2-7]{12})$")

#: The file config/boot.py keeps the signing secret in, in the settings' run_dir (run/).
KEY_FILE = "verp.key"


class BadTag(ValueError):
    """A return path without a tag, or with one that does not verify: not one we sent."""


def load_key(path: str | Path) -> bytes:
    """The signing secret in ``path``, generated there (0600, atomically) by the first process that needs it.

    Every process of the application (router workers, the command line) reads the same file, so a
    tag made by one verifies in another; lamson.connection.ensure_password writes it as it writes
    the Redis password (a new file linked into place, never replacing one another process wrote).
    """
    return ensure_password(path).encode("utf-8")


def tag(key: bytes, list_name: str, member: str) -> str:
    """The tag of ``member``'s return path on ``list_name``: 12 lowercase base32 characters (60 bits)."""
    text = f"{list_name.lower()}\x00{normal_address(member)}".encode()
    digest = hmac.new(key, text, hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode("ascii").lower()[:12]


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


def return_path(list_name: str, member: str, host: str, key: bytes) -> str:
    """The envelope sender of ``member``'s copy: ``LIST-bounce+LOCAL=DOMAIN=TAG@HOST``."""
    return f"{list_name}-bounce+{encode(member)}={tag(key, list_name, member)}@{host}"


def verified_member(text: str, list_name: str, key: bytes) -> str:
    """The member named by the part after ``bounce+`` when its tag verifies for ``list_name``.

    ValueError when it is no VERP address; :class:`BadTag` when it is one without a tag (made
    before tags) or with a tag that is not ours for this list and member.
    """
    text = text.lower()
    signed = _SIGNED.match(text)
    if signed is None:
        decode(text)  # ValueError when it is not even an address we could have made
        raise BadTag(f"a return path without a tag: {text!r}")
    member = decode(signed["member"])
    if not hmac.compare_digest(signed["tag"], tag(key, list_name, member)):
        raise BadTag(f"a return path whose tag does not verify: {text!r}")
    return member
