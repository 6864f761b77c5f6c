"""The mail objects handlers see: :class:`MailRequest` in, :class:`MailResponse` out.

Both sit on the standard library's ``email`` package (``email.policy``), which
does all MIME parsing and encoding. What this module adds is the contract a
mail server needs and the stdlib does not give:

* a :class:`MailRequest` can be built from *any* bytes and never raises, in
  bounded time (limits in :mod:`lamson.encoding`);
* headers read as decoded text, with charset fallbacks, case-insensitively;
* a :class:`MailResponse` always renders a valid RFC 5322 message: 7bit when
  it is ASCII, RFC 2047 encoded words in headers, UTF-8 quoted-printable or
  base64 bodies, CRLF line ends, and no header injection.
"""

from __future__ import annotations

import copy
import email.utils
import mimetypes
import re
from collections.abc import Iterable, Iterator
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any, NamedTuple

from lamson import bounce
from lamson.encoding import (
    ADDRESS_HEADERS,
    MAX_DEPTH,
    MAX_WORDS_PER_HEADER,
    HeaderInjectionError,
    canonical_body,
    canonical_header,
    canonical_name,
    clean_header,
    decode_header_text,
    decode_text,
    header_block_end,
    screen,
    walk_with_depth,
)

__all__ = [
    "Attachment",
    "HeaderInjectionError",
    "MailRequest",
    "MailResponse",
    "canonical_body",
    "canonical_header",
    "canonical_name",
    "screen",
]

#: How we read: the modern API, lenient (defects are recorded, not raised).
READ_POLICY = policy.default
#: How we write: CRLF, headers folded at 78, and 7bit transfer encodings only
#: (so 8-bit bodies become quoted-printable or base64, never raw 8-bit).
WRITE_POLICY = policy.SMTP.clone(cte_type="7bit")


class Attachment(NamedTuple):
    """One attached file: its (decoded) name, MIME type and exact bytes."""

    filename: str | None
    content_type: str
    data: bytes


def _envelope_address(value: str | None) -> str | None:
    """An SMTP envelope address as routing wants it: bare and lowercased."""
    if value is None:
        return None
    value = str(value).strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    elif "<" in value:
        value = email.utils.parseaddr(value)[1] or value
    return value.lower()


def _unfolded_raw(message: Message, name: str) -> list[str]:
    """The raw stored values of a header (the parser keeps them undecoded)."""
    lowered = name.lower()
    return [value for key, value in message._headers if key.lower() == lowered]  # noqa: SLF001


class MailRequest:
    """An incoming message: envelope plus the raw bytes, parsed on first use.

    ``From``/``To`` are the SMTP envelope (MAIL FROM / one RCPT TO), bare and
    lowercased for routing; ``""`` is the null sender ``<>``, None unknown.
    ``Data`` and ``original`` are the bytes exactly as received (a ``str`` is
    stored as its UTF-8 bytes). Nothing here raises on malformed mail: a
    message over the limits keeps its raw bytes and the reason in
    :attr:`refused`, and reads as having fewer (or no) headers and parts.
    """

    def __init__(self, Peer: Any, From: str | None, To: str | None, Data: bytes | str) -> None:  # noqa: N803
        self.Peer = Peer
        self.From = _envelope_address(From)
        self.To = _envelope_address(To)
        if isinstance(Data, str):
            Data = Data.encode("utf-8", "surrogateescape")
        self.Data: bytes = bytes(Data)
        self.original: bytes = self.Data
        self._message: EmailMessage | None = None
        self._refused: str | None = None
        self._modified = False

    # ------------------------------------------------------------------ parsing

    @property
    def refused(self) -> str | None:
        """Why this message was only partly parsed (see :func:`lamson.encoding.screen`), or None."""
        self._parsed()
        return self._refused

    def _parsed(self) -> EmailMessage:
        if self._message is None:
            self._message, self._refused = _parse(self.Data)
        return self._message

    def to_message(self) -> EmailMessage:
        """The parsed ``email.message.EmailMessage`` (the same object each call)."""
        return self._parsed()

    # ------------------------------------------------------------------ headers

    def __getitem__(self, name: str) -> str | None:
        """The first ``name`` header, decoded to text; None when absent."""
        values = self.get_all(name)
        return values[0] if values else None

    def get(self, name: str, default: Any = None) -> Any:
        value = self[name]
        return default if value is None else value

    def get_all(self, name: str) -> list[str]:
        """Every ``name`` header, decoded, in message order."""
        return [_decode_header(name, raw) for raw in _unfolded_raw(self._parsed(), name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._parsed()

    def keys(self) -> list[str]:
        """Header names in message order (repeats included), as spelled in the message."""
        return [key for key, _ in self._parsed()._headers]  # noqa: SLF001

    def items(self) -> list[tuple[str, str]]:
        return [(key, _decode_header(key, raw)) for key, raw in self._parsed()._headers]  # noqa: SLF001

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __setitem__(self, name: str, value: str) -> None:
        """Replace every ``name`` header with one (checked by :func:`lamson.encoding.clean_header`)."""
        value = clean_header(name, value)
        message = self._parsed()
        del message[name]
        message[name] = value
        self._modified = True

    def __delitem__(self, name: str) -> None:
        del self._parsed()[name]
        self._modified = True

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """``(display name, address)`` pairs from every ``name`` header."""
        pairs: list[tuple[str, str]] = []
        for raw in _unfolded_raw(self._parsed(), name):
            pairs.extend(_addresses(name, raw))
        return pairs

    # ------------------------------------------------------------------ content

    def walk(self) -> Iterator[Message]:
        """Every part, containers included, depth first (no recursion, so no depth crash)."""
        for _, part in walk_with_depth(self._parsed()):
            yield part

    def all_parts(self) -> list[Message]:
        """The leaf (non-multipart) parts in order."""
        return [part for part in self.walk() if not part.is_multipart()]

    def body(self) -> str:
        """The text body: the first inline text/plain part, else the first text part; "" if none.

        Decoded with charset fallbacks; line ends are ``\\n``.
        """
        texts = [p for p in self.all_parts() if p.get_content_maintype() == "text" and not _is_attachment(p)]
        chosen = next((p for p in texts if p.get_content_subtype() == "plain"), texts[0] if texts else None)
        return "" if chosen is None else part_text(chosen)

    def attachments(self) -> list[Attachment]:
        """Parts that are attachments (a disposition of attachment, or a file name)."""
        found = []
        for part in self.all_parts():
            if _is_attachment(part):
                found.append(Attachment(_filename(part), part.get_content_type(), part_bytes(part)))
        return found

    def is_bounce(self, threshold: float = 0.3) -> bool:
        """True when this looks like a delivery failure report (see :mod:`lamson.bounce`)."""
        return bounce.detect(self).score >= threshold

    @property
    def bounce(self) -> bounce.BounceAnalysis:
        """The bounce analysis of this message (cached by :func:`lamson.bounce.detect`)."""
        return bounce.detect(self)

    def as_bytes(self) -> bytes:
        """The original bytes, or a re-rendering once headers were changed through this object."""
        if not self._modified:
            return self.original
        try:
            return self._parsed().as_bytes(policy=READ_POLICY.clone(linesep="\r\n"))
        except Exception:  # noqa: BLE001 - an unrenderable change must not lose the message
            return self.original

    def __bytes__(self) -> bytes:
        return self.as_bytes()

    def __str__(self) -> str:
        return self.as_bytes().decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<MailRequest From={self.From!r} To={self.To!r} {len(self.Data)} bytes>"


def _parse(data: bytes) -> tuple[EmailMessage, str | None]:
    """Parse ``data`` as far as the limits allow; never raises."""
    reason = screen(data)
    parser = BytesParser(policy=READ_POLICY)
    if reason is None:
        try:
            message = parser.parsebytes(data)
            depth = max(depth for depth, _ in walk_with_depth(message))
            if depth <= MAX_DEPTH:
                return message, None
            reason = f"MIME nesting {depth} levels deep (limit {MAX_DEPTH})"
        except (RecursionError, MemoryError):
            reason = "MIME structure too deep for the parser"
        except Exception as exc:  # noqa: BLE001 - stdlib parser bugs must not reach handlers
            reason = f"unparseable message ({type(exc).__name__})"
    # Refused: keep what is safe. Headers only when the header block is within limits.
    if reason.startswith(("MIME", "unparseable")) or "MIME delimiter" in reason:
        try:
            return parser.parsebytes(data, headersonly=True), reason
        except Exception:  # noqa: BLE001
            pass
    if reason.startswith("header block"):
        return EmailMessage(policy=READ_POLICY), reason
    end = header_block_end(data)
    try:
        # Encoded-word floods: headers kept raw; _decode_header falls back to the linear decoder.
        return parser.parsebytes(data if end is None else data[: end + 4], headersonly=True), reason
    except Exception:  # noqa: BLE001
        return EmailMessage(policy=READ_POLICY), reason


_LINE_ENDS = re.compile(r"\r\n|\r|\n")


def _decode_header(name: str, raw: str) -> str:
    """Decode one raw header value: the stdlib's parser when it is cheap and right, else ours."""
    if raw.isascii() and "=?" not in raw:
        return decode_header_text(raw)
    if raw.count("=?") <= MAX_WORDS_PER_HEADER and raw.isascii():
        try:
            value = str(READ_POLICY.header_factory(name, _LINE_ENDS.sub("", raw)))
            if "\ufffd" not in value:
                return value
        except Exception:  # noqa: BLE001 - fall through to the linear decoder
            pass
    return decode_header_text(raw)


def _addresses(name: str, raw: str) -> list[tuple[str, str]]:
    """Parse an address header; display names with encoded words are decoded by us.

    The stdlib's address parser puts a space between adjacent encoded words in
    a display name (RFC 2047 section 6.2 says drop it), so when the raw value
    has encoded words and ``getaddresses`` finds the same addresses, the names
    come from :func:`decode_header_text` instead.
    """
    unfolded = _LINE_ENDS.sub("", raw)
    if raw.count("=?") > MAX_WORDS_PER_HEADER:  # the structured parser is quadratic in encoded words
        return [(decode_header_text(n), a) for n, a in email.utils.getaddresses([unfolded]) if a]
    try:
        header = READ_POLICY.header_factory(name, unfolded if raw.isascii() else decode_header_text(raw))
        pairs = [(a.display_name, a.addr_spec) for a in getattr(header, "addresses", ())]
    except Exception:  # noqa: BLE001
        return [(n, a) for n, a in email.utils.getaddresses([decode_header_text(raw)]) if a]
    if "=?" in unfolded and raw.isascii():
        try:
            raw_pairs = [(n, a) for n, a in email.utils.getaddresses([unfolded]) if a]
        except Exception:  # noqa: BLE001
            raw_pairs = []
        if [a for _, a in raw_pairs] == [a for _, a in pairs]:
            pairs = [
                (decode_header_text(n) if "=?" in n else d, a)
                for (n, a), (d, _) in zip(raw_pairs, pairs, strict=True)
            ]
    return pairs


def _is_attachment(part: Message) -> bool:
    if part.is_multipart():
        return False
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    return disposition != "inline" and _filename(part) is not None


def _filename(part: Message) -> str | None:
    """The decoded file name (RFC 2231 or RFC 2047), or None; never raises.

    Read from the parsed parameters of Content-Disposition (then Content-Type
    ``name``): the legacy ``get_filename()`` strips ``<...>`` from names.
    """
    raw = " ".join(_unfolded_raw(part, "content-disposition") + _unfolded_raw(part, "content-type"))
    if raw.count("=?") > MAX_WORDS_PER_HEADER:
        return None
    name: Any = None
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        try:
            params = getattr(part.get(header), "params", None) or {}
            name = params.get(param)
        except Exception:  # noqa: BLE001 - a malformed header: try the next place
            name = None
        if name:
            break
    if not name:
        try:
            name = part.get_filename() or part.get_param("name")
        except Exception:  # noqa: BLE001
            return None
    if isinstance(name, tuple):  # an RFC 2231 triple that get_param left undecoded
        name = email.utils.collapse_rfc2231_value(name)
    if not name:
        return None
    name = str(name)
    if "=?" in name or "\ufffd" in name or any("\udc80" <= ch <= "\udcff" for ch in name):
        name = decode_header_text(name)
    return name.strip() or None


def part_bytes(part: Message) -> bytes:
    """A leaf part's content after undoing its transfer encoding; never raises."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if payload is None:
        raw = part.get_payload()
        payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    return payload


def part_text(part: Message) -> str:
    """A text part's content as ``str`` with ``\\n`` line ends, charset fallbacks applied."""
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    text = decode_text(part_bytes(part), charset)
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------------------- responses

AddressLike = str | tuple[str, str] | Address


def _idna(domain: str) -> str:
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def _address_list(name: str, value: AddressLike | Iterable[AddressLike]) -> str | list[Address]:
    """Normalise an address header value; non-ASCII domains become IDNA (ASCII on the wire).

    Strings with a line break or control character are refused
    (:class:`HeaderInjectionError`); display names are quoted/encoded by the stdlib.
    """
    items: list[AddressLike]
    if isinstance(value, str | Address) or (
        isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)
    ):
        items = [value]  # type: ignore[list-item]
    else:
        items = list(value)  # type: ignore[arg-type]
    out: list[str | Address] = []
    for item in items:
        if isinstance(item, Address):
            clean_header(name, f"{item.display_name} {item.addr_spec}")
            out.append(Address(canonical_name(item.display_name), item.username, _idna(item.domain)))
        elif isinstance(item, tuple):
            display, addr = item
            clean_header(name, f"{display} {addr}")
            out.append(_make_address(display, addr))
        else:
            text = clean_header(name, str(item))
            pairs = email.utils.getaddresses([text])
            if pairs and all(addr for _, addr in pairs):
                out.extend(_make_address(display, addr) for display, addr in pairs)
            else:  # e.g. a group ("undisclosed-recipients:;"): the stdlib parses it when set
                out.append(text)
    if all(isinstance(a, Address) for a in out):
        return out  # type: ignore[return-value]
    return ", ".join(str(a) for a in out)


def _make_address(display: str, addr: str) -> Address:
    display = canonical_name(display)
    local, at, domain = addr.rpartition("@")
    if not at:
        return Address(display_name=display, addr_spec=addr)
    return Address(display_name=display, username=local, domain=_idna(domain))


class MailResponse:
    """An outgoing message: headers, a text and/or HTML body, attachments.

    Everything stays editable until it is rendered (``to_message``,
    ``as_bytes``, ``bytes()``, ``str()``), so templates and handlers can fill
    it in any order. Rendering adds ``Date`` and ``Message-ID`` if missing
    (once; later renderings keep them).
    """

    def __init__(
        self,
        To: AddressLike | Iterable[AddressLike] | None = None,  # noqa: N803
        From: AddressLike | None = None,  # noqa: N803
        Subject: str | None = None,  # noqa: N803
        Body: str | None = None,  # noqa: N803
        Html: str | None = None,  # noqa: N803
    ) -> None:
        self._headers: list[tuple[str, Any]] = []
        self.Body = Body
        self.Html = Html
        self.attachments: list[dict[str, Any]] = []
        self.parts: list[Message] = []
        if From is not None:
            self["From"] = From
        if To is not None:
            self["To"] = To
        if Subject is not None:
            self["Subject"] = Subject

    # ------------------------------------------------------------------ headers

    def __setitem__(self, name: str, value: Any) -> None:
        """Replace ``name``; address headers accept a string, ``(name, addr)``, Address or a list."""
        if name.lower() in ADDRESS_HEADERS:
            clean_header(name, "")  # validates the header name
            stored: Any = _address_list(name, value)
        else:
            stored = clean_header(name, value)
        self._remove(name)
        self._headers.append((name, stored))

    def _remove(self, name: str) -> None:
        lowered = name.lower()
        self._headers = [(k, v) for k, v in self._headers if k.lower() != lowered]

    def __getitem__(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self._headers:
            if key.lower() == lowered:
                return ", ".join(str(a) for a in value) if isinstance(value, list) else value
        return None

    def get(self, name: str, default: Any = None) -> Any:
        value = self[name]
        return default if value is None else value

    def __delitem__(self, name: str) -> None:
        self._remove(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k.lower() == name.lower() for k, _ in self._headers)

    def keys(self) -> list[str]:
        return [k for k, _ in self._headers]

    def update(self, headers: dict[str, Any]) -> None:
        for name, value in headers.items():
            self[name] = value

    def recipients(self) -> list[str]:
        """Every address in To, Cc and Bcc (what a relay gives as RCPT TO)."""
        return [addr for _, addr in self._render_addresses(("To", "Cc", "Bcc"))]

    def _render_addresses(self, names: Iterable[str]) -> list[tuple[str, str]]:
        message = self.to_message()
        pairs: list[tuple[str, str]] = []
        for name in names:
            for header in message.get_all(name) or []:
                pairs.extend((a.display_name, a.addr_spec) for a in getattr(header, "addresses", ()))
        return pairs

    # ------------------------------------------------------------------ attachments

    def attach(
        self,
        filename: str | None = None,
        content_type: str | None = None,
        data: bytes | str | None = None,
        disposition: str | None = None,
    ) -> None:
        """Add an attachment. The type is guessed from the file name when not given.

        ``str`` data is sent as UTF-8 text; ``bytes`` are sent byte-exact (base64).
        """
        if data is None:
            raise ValueError("attach() needs data")
        if content_type is None:
            guessed = mimetypes.guess_type(filename or "")[0]
            content_type = guessed or ("text/plain" if isinstance(data, str) else "application/octet-stream")
        if "/" not in content_type:
            raise ValueError(f"content_type {content_type!r} is not of the form type/subtype")
        if filename is not None:
            filename = canonical_header(filename)
        self.attachments.append(
            {
                "filename": filename,
                "content_type": content_type,
                "data": data,
                "disposition": disposition or ("attachment" if filename else "inline"),
            }
        )

    def attach_part(self, part: Message) -> None:
        """Add an already built MIME part (e.g. one taken from a :class:`MailRequest`) as is."""
        self.parts.append(part)

    def attach_all_parts(self, mail_request: MailRequest) -> None:
        """Add every leaf part of ``mail_request`` (copies), e.g. to forward its content."""
        for part in mail_request.all_parts():
            self.parts.append(copy.deepcopy(part))

    def clear(self) -> None:
        """Drop attachments and attached parts (headers and bodies stay)."""
        self.attachments = []
        self.parts = []

    # ------------------------------------------------------------------ rendering

    def to_message(self) -> EmailMessage:
        """A freshly built ``EmailMessage`` for the current headers, bodies and attachments."""
        self._stamp()
        message = EmailMessage(policy=WRITE_POLICY)
        for name, value in self._headers:
            message[name] = value
        if self.Body is not None or (self.Html is None and not self.attachments and not self.parts):
            message.set_content(self.Body or "")
            if self.Html is not None:
                message.add_alternative(self.Html, subtype="html")
        elif self.Html is not None:
            message.set_content(self.Html, subtype="html")
        for spec in self.attachments:
            _add_attachment(message, spec)
        if self.parts:
            if message.get_content_type() != "multipart/mixed":
                message.make_mixed()
            for part in self.parts:
                message.attach(part)
        if "MIME-Version" not in message:
            message["MIME-Version"] = "1.0"
        for part in message.walk():
            if part is not message and not self._is_attached(part):
                del part["MIME-Version"]  # the stdlib adds it to sub-parts; it belongs on the top only
        return message

    def _is_attached(self, part: Message) -> bool:
        return any(part is p for p in self.parts)

    def _stamp(self) -> None:
        """Add Date and Message-ID once, so every rendering of this response agrees."""
        if "Date" not in self:
            self._headers.append(("Date", email.utils.format_datetime(email.utils.localtime())))
        if "Message-ID" not in self:
            domain = "lamson.localdomain"
            for name, value in self._headers:
                if name.lower() == "from" and isinstance(value, list) and value and value[0].domain:
                    domain = value[0].domain
            self._headers.append(("Message-ID", email.utils.make_msgid(domain=domain)))

    def as_bytes(self) -> bytes:
        """The message as RFC 5322 bytes: CRLF line ends, 7bit-safe, lines ≤ 998 octets."""
        return self.to_message().as_bytes(policy=WRITE_POLICY)

    def __bytes__(self) -> bytes:
        return self.as_bytes()

    def __str__(self) -> str:
        return self.as_bytes().decode("ascii", "replace")

    def __repr__(self) -> str:
        return f"<MailResponse To={self['To']!r} Subject={self['Subject']!r}>"


def _add_attachment(message: EmailMessage, spec: dict[str, Any]) -> None:
    maintype, _, subtype = spec["content_type"].partition("/")
    data = spec["data"]
    kwargs: dict[str, Any] = {"disposition": spec["disposition"]}
    if spec["filename"]:
        kwargs["filename"] = spec["filename"]
    if isinstance(data, str):
        if maintype == "text":
            message.add_attachment(data, subtype=subtype, **kwargs)
            return
        data = data.encode("utf-8")
    message.add_attachment(bytes(data), maintype=maintype, subtype=subtype, **kwargs)
