"""DKIM signing of outgoing mail (RFC 6376, dkimpy), in the relay, over exactly the bytes sent.

``dkim_config`` (settings) turns it on::

    dkim_config = {"domain": "example.com", "selector": "mail2026",
                   "key_file": "config/dkim.key"}      # relative to the project root

Optional keys: ``"headers"`` (the header names to sign; default dkimpy's list, which
covers From, To, Cc, Subject, Date, Message-ID, Reply-To, MIME headers, ... and signs
From once more than it occurs so none can be added) and ``"sign_all"`` (default False:
only mail whose ``From:`` domain is ``domain`` or one of its subdomains is signed, the
mail DMARC would align with this signature; True signs every message with ``d=domain``).

The relay worker signs each message right before it hands it to the SMTP session: after
Bcc removal, line-ending normalisation and its trace header, so the signature covers the
very bytes the smart host receives. The key is read once per process (again only when
the file changes).

Failures never lose mail:

* the key cannot be used (``dkim_config`` malformed, key file missing, unreadable or not
  an RSA key): :class:`KeyUnavailable`; the relay defers the message as for a 4xx (it
  waits in the outbox, retried on ``relay_retries``, a DSN after ``relay_lifetime``) and
  logs why at ERROR, so fixing the file sends it, signed;
* one message cannot be signed (headers dkimpy cannot parse): it is sent unsigned and a
  warning names it, since retrying would give the same result.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from dataclasses import dataclass
from email.parser import HeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import dkim
import dkim.crypto

from lamson.typed_settings import Settings

log = logging.getLogger("lamson.relay")

#: The OID of rsaEncryption (1.2.840.113549.1.1.1), DER-encoded.
RSA_OID = bytes.fromhex("2a864886f70d010101")


class KeyUnavailable(Exception):
    """Signing is configured but the key cannot be used: the message waits (nothing is sent unsigned)."""


@dataclass(frozen=True)
class Config:
    domain: str
    selector: str
    key_file: str
    headers: tuple[str, ...] | None = None
    sign_all: bool = False


def parse_config(value: Any) -> Config | None:
    """The ``dkim_config`` setting as a :class:`Config` (None: no signing); ValueError if malformed."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"dkim_config must be None or a dict, not {value!r}")
    missing = [k for k in ("domain", "selector", "key_file") if not value.get(k)]
    if missing:
        raise ValueError(f"dkim_config needs {', '.join(missing)}")
    unknown = set(value) - {"domain", "selector", "key_file", "headers", "sign_all"}
    if unknown:
        raise ValueError(f"dkim_config has unknown key(s) {', '.join(sorted(unknown))}")
    headers = value.get("headers")
    if headers is not None:
        if isinstance(headers, str) or not all(isinstance(h, str) and h for h in headers):
            raise ValueError("dkim_config['headers'] must be a list of header names")
        if "from" not in {h.lower() for h in headers}:
            raise ValueError("dkim_config['headers'] must include From (RFC 6376 5.4)")
        headers = tuple(headers)
    return Config(domain=ascii_domain(str(value["domain"])), selector=str(value["selector"]),
                  key_file=str(value["key_file"]), headers=headers, sign_all=bool(value.get("sign_all", False)))


_keys: dict[str, tuple[tuple[int, int], bytes]] = {}
_keys_lock = threading.Lock()


def load_key(path: str) -> bytes:
    """The PEM private key in ``path``, read once per process (and again when the file changes)."""
    try:
        stat = os.stat(path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        with _keys_lock:
            cached = _keys.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise KeyUnavailable(f"DKIM key file {path!r}: {exc.strerror or exc}") from None
    try:
        dkim.crypto.parse_pem_private_key(pem)
    except Exception as exc:
        raise KeyUnavailable(f"DKIM key file {path!r} holds no usable RSA private key: {exc}") from None
    with _keys_lock:
        _keys[path] = (stamp, pem)
    return pem


def from_domain(data: bytes) -> str | None:
    """The domain of the (first) ``From:`` address, lower case, or None."""
    try:
        end = data.find(b"\r\n\r\n")
        headers = HeaderParser().parsestr((data if end < 0 else data[:end + 2]).decode("utf-8", "replace"))
        values = headers.get_all("From") or []
        addresses = getaddresses([str(v) for v in values])
    except Exception:
        return None
    for _, address in addresses:
        if "@" in address:
            return ascii_domain(address.rsplit("@", 1)[1]) or None
    return None


def ascii_domain(domain: str) -> str:
    """``domain`` lower case, without a final dot, internationalized names as A-labels (xn--)."""
    domain = domain.strip().lower().rstrip(".")
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


class Signer:
    """Signs outgoing mail as ``settings.dkim_config`` says (built once per delivery job, cheap)."""

    def __init__(self, settings: Settings | Any, root: str | os.PathLike[str] | None = None) -> None:
        self.problem: str | None = None
        try:
            self.config = parse_config(Settings.of(settings).dkim_config)
        except ValueError as exc:
            self.config, self.problem = None, str(exc)
        self.root = Path(root) if root is not None else Path.cwd()

    @property
    def enabled(self) -> bool:
        return self.config is not None or self.problem is not None

    def key_path(self) -> str:
        assert self.config is not None
        return str(self.root / self.config.key_file)  # an absolute key_file stays as it is

    def wants(self, data: bytes) -> bool:
        if self.config is None:
            return False
        if self.config.sign_all:
            return True
        domain = from_domain(data)
        return domain is not None and (domain == self.config.domain or domain.endswith("." + self.config.domain))

    def sign(self, data: bytes, what: str = "message") -> bytes:
        """``data`` with a DKIM-Signature prepended when it should be signed; raises KeyUnavailable."""
        if self.problem is not None:
            raise KeyUnavailable(self.problem)
        if self.config is None or not self.wants(data):
            return data
        key = load_key(self.key_path())
        if not data.endswith(b"\r\n"):
            data += b"\r\n"  # smtplib would add it: sign what is sent
        include = [h.encode("ascii") for h in self.config.headers] if self.config.headers else None
        try:
            header = dkim.sign(data, self.config.selector.encode("ascii"), self.config.domain.encode("ascii"), key,
                               include_headers=include, linesep=b"\r\n")
        except Exception as exc:  # this message only (the key loaded): retrying would fail the same way
            log.warning("%s sent unsigned: DKIM signing failed: %s", what, exc)
            return data
        return bytes(header) + data


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))  # a leading 0 keeps it positive


def public_key_b64(pem: bytes) -> str:
    """The ``p=`` value for a PEM RSA private key: base64 of its SubjectPublicKeyInfo (DER)."""
    key = dkim.crypto.parse_pem_private_key(pem)
    rsa = _der(0x30, _der_int(key["modulus"]) + _der_int(key["publicExponent"]))
    spki = _der(0x30, _der(0x30, _der(0x06, RSA_OID) + _der(0x05, b"")) + _der(0x03, b"\x00" + rsa))
    return base64.b64encode(spki).decode("ascii")


def txt_value(pem: bytes) -> str:
    return f"v=DKIM1; k=rsa; p={public_key_b64(pem)}"


def txt_record(pem: bytes, selector: str, domain: str) -> str:
    """The zone-file line to publish: ``S._domainkey.D. IN TXT "..." "..."`` in strings of at most 255 bytes."""
    value = txt_value(pem)
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)]
    quoted = " ".join(f'"{c}"' for c in chunks)
    return f"{selector}._domainkey.{domain.rstrip('.')}. IN TXT {quoted}"


def generate_key(path: str | os.PathLike[str], bits: int = 2048) -> bytes:
    """Write a new RSA private key (PEM, mode 0600, never over an existing file) and return it.

    With the ``cryptography`` package when it is installed, else ``openssl genrsa``.
    """
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        pem = _openssl_key(bits)
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    os.chmod(path, 0o600)  # whatever the umask
    return pem


def _openssl_key(bits: int) -> bytes:
    import subprocess

    done = subprocess.run(["openssl", "genrsa", str(bits)], capture_output=True, check=True, timeout=120)
    return done.stdout
