"""Limits, charset fallbacks and header hygiene for the mail model.

The standard library's ``email`` package does the MIME work; this module only
adds what it lacks for a server that must read *any* message:

* **Limits** (:func:`screen`): the stdlib recurses once per MIME level (a
  RecursionError a few hundred levels down) and decodes RFC 2047 encoded words
  in quadratic time, so a hostile message could crash or stall a worker.
  :func:`screen` spots those messages cheaply, before anything parses them.
* **Charset fallbacks** (:func:`decode_text`, :func:`decode_header_text`):
  mail is routinely mis-labelled (Latin-1 labelled ``us-ascii``, UTF-8
  labelled ``iso-8859-1``, charsets nobody has heard of); we decode with a
  sensible guess instead of raising or printing U+FFFD.
* **Header hygiene** (:func:`clean_header`): a value that could break a header
  line (CR, LF, NUL, U+2028, U+0085, ...) never reaches the wire. Text headers
  are neutralised, address headers are refused (see ``docs/mail.md``).
"""

from __future__ import annotations

import email.header
import email.utils
import functools
import re
from collections.abc import Iterable, Iterator
from email.message import EmailMessage, Message
from typing import Any

#: The largest header block we parse (Postfix's default header_size_limit is 100 KiB).
MAX_HEADER_BYTES = 256 * 1024
#: The deepest MIME nesting we accept (multipart and message/* containers).
MAX_DEPTH = 50
#: Lines starting with "--" (an upper bound on MIME parts) allowed in a message: the
#: stdlib parses parts at roughly 2,000 a second, so a part bomb would stall a worker.
MAX_PARTS = 1000
#: Encoded words allowed in the top-level header block.
MAX_ENCODED_WORDS = 1000
#: Above this many encoded words in one value, decode with the linear fallback
#: instead of the stdlib's (quadratic) structured header parser.
MAX_WORDS_PER_HEADER = 200

#: Characters that some part of Python or of a mail client treats as a line
#: break (``str.splitlines`` splits on all of these).
LINE_BREAKS = "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_BREAK_RUN = re.compile(f"[{re.escape(LINE_BREAKS)}]+")
#: Other control characters: C0 except TAB, DEL, C1.
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x1f\x7f\x80-\x84\x86-\x9f]")
_UNSAFE = re.compile(f"[{re.escape(LINE_BREAKS)}\x00-\x08\x0e-\x1b\x1f\x7f\x80-\x9f]")
_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")

#: Headers whose values are addresses: a control character there is refused,
#: because no rewriting of it is a safe guess at who the recipient is.
ADDRESS_HEADERS = frozenset(
    {
        "from", "to", "cc", "bcc", "reply-to", "sender", "return-path",
        "resent-from", "resent-to", "resent-cc", "resent-bcc", "resent-sender",
        "delivered-to", "disposition-notification-to", "errors-to",
    }
)  # fmt: skip

#: Labels that decode any byte string without error, and so hide a mis-label.
_PERMISSIVE = frozenset({"us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "iso8859-1", "l1"})


#: A plain address: a dot-atom local part, ``@``, a domain of letter-digit-hyphen labels, ASCII.
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
PLAIN_ADDR = rf"{ATOM}(?:\.{ATOM})*@{LABEL}(?:\.{LABEL})*"
#: Such an address has nothing to parse: the email package's parseaddr/getaddresses and
#: smtplib's quoteaddr give it back unchanged (differential tests check it), so the mail model
#: and the relay's hot paths take it as it is and skip them.
PLAIN_ADDRESS = re.compile(PLAIN_ADDR)


class HeaderInjectionError(ValueError):
    """An address header value contained a line break or control character."""


# --------------------------------------------------------------------------- limits


_CRLF_FIRST = (b"\r\n\r\n", b"\n\n", b"\r\r")
_LF_FIRST = (b"\n\n", b"\r\n\r\n", b"\r\r")


def header_block_end(data: bytes, limit: int = MAX_HEADER_BYTES) -> int | None:
    """Offset of the blank line ending the header block, searched within ``limit`` bytes.

    None when there is no blank line in the first ``limit`` bytes; the whole
    message is then the header block (or the block is over the limit).
    """
    if data.startswith((b"\n", b"\r\n", b"\r")):
        return 0
    # The ending the first line uses is looked for first; each other one only before what was
    # found, so the body is not scanned three times to the limit.
    end = limit + 4
    first = data.find(b"\n", 0, end)
    order = _CRLF_FIRST if first > 0 and data[first - 1] == 13 else _LF_FIRST
    best = -1
    for sep in order:
        found = data.find(sep, 0, end if best < 0 else min(end, best - 1 + len(sep)))
        if found >= 0:
            best = found
    return best if best >= 0 else None


def screen(data: bytes | str) -> str | None:
    """A one-line reason to quarantine ``data`` instead of routing it, or None.

    Cheap (a few byte scans, no parsing) so it can run on every message: it
    refuses header blocks over :data:`MAX_HEADER_BYTES`, more than
    :data:`MAX_ENCODED_WORDS` encoded words in the header block, more than
    :data:`MAX_PARTS` lines starting with ``--`` (MIME delimiters), and MIME
    nesting deeper than :data:`MAX_DEPTH` (measured by a parse only when a
    byte count says the message might be that deep).
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    end = header_block_end(data)
    if end is None:
        if len(data) > MAX_HEADER_BYTES:
            return f"header block larger than {MAX_HEADER_BYTES} bytes"
        end = len(data)
    words = data.count(b"=?", 0, end)
    if words > MAX_ENCODED_WORDS:
        return f"{words} encoded words in the header block (limit {MAX_ENCODED_WORDS})"
    delimiters = data.count(b"\n--") + data.count(b"\r--")
    if delimiters > MAX_PARTS:
        return f"{delimiters} MIME delimiter lines (limit {MAX_PARTS} parts)"
    lowered = data.lower()
    containers = lowered.count(b"multipart/") + lowered.count(b"message/")
    if containers > MAX_DEPTH:
        depth = measured_depth(data)
        if depth is None or depth > MAX_DEPTH:
            shown = "over 250" if depth is None else str(depth)
            return f"MIME nesting {shown} levels deep (limit {MAX_DEPTH})"
    return None


def measured_depth(data: bytes) -> int | None:
    """MIME depth of ``data`` by a real parse; None if the stdlib cannot parse it."""
    from email import policy
    from email.parser import BytesParser

    try:
        message = BytesParser(policy=policy.default).parsebytes(data)
        return max(depth for depth, _ in walk_with_depth(message))
    except (RecursionError, MemoryError):
        return None
    except Exception:  # noqa: BLE001 - a parser bug is a refusal, not a crash
        return None


def walk_with_depth(message: Message) -> Iterator[tuple[int, Message]]:
    """Every part with its depth (the root is 0), without recursion."""
    stack: list[tuple[int, Message]] = [(0, message)]
    while stack:
        depth, part = stack.pop()
        yield depth, part
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend((depth + 1, child) for child in reversed(payload) if isinstance(child, Message))


# --------------------------------------------------------------------------- charsets


def _lookup(charset: str | None) -> str | None:
    """The codec name for a MIME charset label, or None if Python has no such codec."""
    if not charset:
        return None
    import codecs

    label = charset.strip().strip('"').lower()
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def _guess(data: bytes) -> str:
    """Decode bytes of unknown charset: UTF-8, then a detector, then Windows-1252, then Latin-1."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if len(data) >= 64:
        try:
            import charset_normalizer

            best = charset_normalizer.from_bytes(data).best()
            if best is not None and best.encoding:
                return data.decode(best.encoding)
        except Exception:  # noqa: BLE001 - a detector failure just means we keep guessing
            pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Bytes to text, honouring ``charset`` when it fits and guessing when it doesn't.

    A label that accepts any bytes (us-ascii, Latin-1) is not trusted over
    valid UTF-8: UTF-8 mis-labelled as Latin-1 is far more common than Latin-1
    that happens to be valid multi-byte UTF-8.
    """
    codec = _lookup(charset)
    if codec is not None:
        permissive = (charset or "").strip().strip('"').lower() in _PERMISSIVE or codec in (
            "ascii",
            "iso8859-1",
            "latin-1",
        )
        if permissive and not data.isascii():
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            pass
        except Exception:  # noqa: BLE001 - some codecs (e.g. idna, punycode) raise other errors
            pass
    return _guess(data)


def _has_surrogates(text: str) -> bool:
    """Raw 8-bit bytes in parsed text (the parser surrogate-escapes them); ASCII text has none."""
    return not text.isascii() and any("\udc80" <= ch <= "\udcff" for ch in text)


def decode_header_text(raw: str) -> str:
    """Decode a raw header value linearly, with charset fallbacks; never raises.

    Used where the stdlib's structured parser is slow (many encoded words) or
    gives up (unknown charsets, raw 8-bit bytes). Adjacent encoded words are
    joined without the whitespace between them, as RFC 2047 section 6.2 says.
    """
    if _has_surrogates(raw):  # raw 8-bit bytes in a header (the parser surrogate-escapes them)
        raw = decode_text(raw.encode("utf-8", "surrogateescape"))
    raw = unfold(raw)
    if "=?" not in raw:
        return raw
    try:
        chunks = email.header.decode_header(raw)
    except Exception:  # noqa: BLE001 - malformed encoded words: show them as they are
        return raw
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        else:
            out.append(decode_text(chunk, charset) if charset else decode_text(chunk, "utf-8"))
    return "".join(out).strip()


def unfold(value: str) -> str:
    """Undo header folding (a line break followed by white space)."""
    return re.sub(r"\r?\n(?=[ \t])|\r(?=[ \t])", "", value)


# --------------------------------------------------------------------------- header hygiene


def neutralise(value: str) -> str:
    """A header-safe version of text: line-break runs become one space, other controls vanish."""
    return _CONTROLS.sub("", _BREAK_RUN.sub(" ", value))


def clean_header(name: str, value: str) -> str:
    """Check a header about to be written; return the value to write.

    * The name must be printable ASCII without a colon (RFC 5322 ftext).
    * Address headers (:data:`ADDRESS_HEADERS`): a line break or control
      character raises :class:`HeaderInjectionError`, because no rewrite of
      ``a@x\\nBcc: b@y`` is a safe guess at the intended recipients.
    * Other headers: neutralised (:func:`neutralise`), because a subject that
      quotes an attacker's text must still be sendable, just not on two lines.
    """
    if not isinstance(name, str) or not _FIELD_NAME.match(name):
        raise ValueError(f"invalid header name {name!r}: printable ASCII without ':' or spaces")
    if not isinstance(value, str):
        value = str(value)
    if name.lower() in ADDRESS_HEADERS:
        bad = _UNSAFE.search(value)
        if bad:
            raise HeaderInjectionError(
                f"{name} header contains a line break or control character {bad.group()!r}; "
                "refusing to guess the intended addresses"
            )
        return value
    return canonical_header(value)


def canonical_header(value: str) -> str:
    """What a text header value (or display or file name) reads as after a round trip.

    Neutralised, and trimmed of white space at both ends (any Unicode white
    space: parsers disagree on it, so we never send it).
    """
    return neutralise(value).strip()


def canonical_name(value: str) -> str:
    """What a display name reads as after a round trip: like a header, with space runs collapsed.

    An ASCII display name travels as words of an RFC 5322 phrase, where runs of
    spaces are not significant, so we never send them.
    """
    return re.sub(r"[ \t]+", " ", canonical_header(value))


def canonical_body(text: str) -> str:
    """What a text body reads as after a round trip: LF line ends, and no line end added at the end
    (a body is sent as given, as Lamson 1.x did)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --------------------------------------------------------------------------- Lamson 1.x's MailBase


@functools.lru_cache(maxsize=4096)
def normal_name(name: str) -> str:
    """A header name as Lamson 1.x spelled it: each dash-separated word capitalised (``Message-Id``)."""
    return "-".join(word.capitalize() for word in name.lower().split("-"))


#: Headers a :class:`MailBase` keeps in ``content_encoding`` (value and parameters), not in ``headers``.
CONTENT_ENCODING_KEYS = frozenset({"Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Mime-Version"})
#: Parameters that describe one rendering only, so ``content_encoding`` leaves them out.
CONTENT_ENCODING_REMOVED_PARAMS = frozenset({"boundary"})


class EncodingError(Exception):
    """Lamson 1.x raised this for text it could not decode. Decoding here falls back instead (see
    :func:`decode_text`), so nothing raises it; it exists for 1.x code that catches it."""


def VALUE_IS_EMAIL_ADDRESS(value: str) -> bool:  # noqa: N802 - Lamson 1.x's name, replaced by applications
    """Whether an address header's value holds addresses (else it is written as plain text).

    Lamson 1.x applications replace this module attribute to decide it
    themselves (an archive that writes ``zedshaw-AT-zedshaw.com`` in From);
    :class:`lamson.mail.MailResponse` and :func:`to_message` look it up each
    time they write an address header.
    """
    return "@" in value


class MailBase:
    """Lamson 1.x's plain view of a message: headers, content headers, a body or parts.

    What 1.x applications read (``msg.base``) and build by hand: ``headers``
    (normalised name → decoded value, the first of each name),
    ``content_encoding`` (``Content-Type`` etc. → ``(value, {param: value})``),
    ``body`` (text decoded to ``str``, other content as ``bytes``; None in a
    multipart) and ``parts`` (MailBase each). It is a copy: changing it does
    not change the message it came from; :func:`to_message` renders one.
    """

    def __init__(self, items: Iterable[tuple[str, Any]] | dict[str, Any] = ()) -> None:
        pairs = items.items() if isinstance(items, dict) else items
        self.headers: dict[str, Any] = {normal_name(k): v for k, v in pairs}
        self.parts: list[MailBase] = []
        self.body: str | bytes | None = None
        self.content_encoding: dict[str, tuple[str | None, dict[str, str]]] = {
            "Content-Type": (None, {}),
            "Content-Disposition": (None, {}),
            "Content-Transfer-Encoding": (None, {}),
        }

    def __getitem__(self, name: str) -> Any:
        return self.headers.get(normal_name(name))

    def __setitem__(self, name: str, value: Any) -> None:
        self.headers[normal_name(name)] = value

    def __delitem__(self, name: str) -> None:
        del self.headers[normal_name(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normal_name(name) in self.headers

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.headers))

    def __len__(self) -> int:
        return len(self.headers)

    def __bool__(self) -> bool:
        return self.body is not None or bool(self.headers) or bool(self.parts)

    def keys(self) -> list[str]:
        return list(self.headers)

    def attach_file(self, filename: str, data: str | bytes, ctype: str, disposition: str) -> None:
        """Add a file part named ``filename`` (in both Content-Type and Content-Disposition)."""
        if not filename:
            raise ValueError("attach_file needs a file name")
        part = MailBase()
        part.body = data
        part.content_encoding["Content-Type"] = (ctype.lower(), {"name": filename})
        part.content_encoding["Content-Disposition"] = (disposition, {"filename": filename})
        self.parts.append(part)

    def attach_text(self, data: str, ctype: str) -> None:
        """Add a text part of type ``ctype`` (``text/plain``, ``text/html``)."""
        part = MailBase()
        part.body = data
        part.content_encoding["Content-Type"] = (ctype.lower(), {})
        self.parts.append(part)

    def walk(self) -> Iterator[MailBase]:
        """Every part under this one, depth first (this one not included), without recursion."""
        stack = list(reversed(self.parts))
        while stack:
            part = stack.pop()
            yield part
            stack.extend(reversed(part.parts))

    def __repr__(self) -> str:
        kind = self.content_encoding.get("Content-Type", (None, {}))[0]
        return f"<MailBase {kind or 'text/plain'} headers={len(self.headers)} parts={len(self.parts)}>"


def _content_value(message: Message, name: str) -> tuple[str | None, dict[str, str]] | None:
    """``(value, params)`` of a content header as MailBase keeps it, or None when absent."""
    if name not in message:
        return None
    try:
        found = message.get_params(header=name) or []
    except Exception:  # noqa: BLE001 - a malformed header: its text without parameters
        found = []
    if not found:
        raw = [str(v) for k, v in message.raw_items() if k.lower() == name.lower()]
        return (decode_header_text(raw[0]).strip() or None, {}) if raw else None
    value = str(found[0][0]).strip()
    params: dict[str, str] = {}
    for key, param in found[1:]:
        if key.lower() in CONTENT_ENCODING_REMOVED_PARAMS:
            continue
        text = email.utils.collapse_rfc2231_value(param) if isinstance(param, tuple) else str(param)
        params[key.lower()] = decode_header_text(text) if "=?" in text else text
    return (value.lower() if name != "Mime-Version" else value) or None, params


def from_message(message: Message) -> MailBase:
    """A :class:`MailBase` of an ``email`` message (all its parts, copied)."""
    from lamson.mail import part_bytes, part_text

    base = MailBase()
    for key, raw in message.raw_items():
        name = normal_name(key)
        if name in CONTENT_ENCODING_KEYS:
            if name not in base.content_encoding or base.content_encoding[name][0] is None:
                found = _content_value(message, name)
                if found is not None:
                    base.content_encoding[name] = found
        elif name not in base.headers:  # the first of each name, as 1.x
            base.headers[name] = decode_header_text(str(raw))
    payload = message.get_payload()
    if isinstance(payload, list):
        base.parts = [from_message(part) for part in payload if isinstance(part, Message)]
    elif message.get_content_maintype() == "text":
        base.body = part_text(message)
    else:
        base.body = part_bytes(message)
    return base


def from_string(data: str | bytes) -> MailBase:
    """A :class:`MailBase` of a message's text; never raises (the mail model's limits apply)."""
    from lamson.mail import MailRequest

    return MailRequest(None, "", "", data).base


def to_message(mail: MailBase) -> EmailMessage:
    """Render a :class:`MailBase` as an ``email`` message, as :class:`lamson.mail.MailResponse` writes mail:
    7bit transfer encodings, RFC 2047 headers, no header injection (see ``docs/design.md``)."""
    return _to_message(mail, top=True)


def _to_message(mail: MailBase, top: bool) -> EmailMessage:
    from lamson.mail import WRITE_POLICY, _as_given, address_header_value

    message = EmailMessage(policy=WRITE_POLICY)
    for name, value in mail.headers.items():
        if value is None or normal_name(name) in CONTENT_ENCODING_KEYS:
            continue
        text = ", ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
        if name.lower() in ADDRESS_HEADERS:
            message[name] = address_header_value(name, text)
        else:
            message[name] = clean_header(name, text)
    ctype, cparams = mail.content_encoding.get("Content-Type") or (None, {})
    if mail.parts:
        kind = ctype if ctype and ctype.startswith("multipart/") else "multipart/mixed"
        message["Content-Type"] = kind
        for key, value in cparams.items():
            message.set_param(key, value)
        message.set_boundary(email.utils.make_msgid().strip("<>").replace("@", "."))
        for part in mail.parts:
            message.attach(_to_message(part, top=False))
    else:
        _set_body(message, mail, ctype or "text/plain", cparams)
        if isinstance(mail.body, str) or mail.body is None:
            _as_given(message, mail.body or "")
    del message["MIME-Version"]  # set_content adds it to every part; it belongs on the top only
    if top:
        message["MIME-Version"] = (mail.content_encoding.get("Mime-Version") or (None, {}))[0] or "1.0"
    return message


def _set_body(message: EmailMessage, mail: MailBase, ctype: str, params: dict[str, str]) -> None:
    """Set a single-part body with its type, parameters and disposition."""
    maintype, _, subtype = ctype.partition("/")
    disposition, dparams = mail.content_encoding.get("Content-Disposition") or (None, {})
    kwargs: dict[str, Any] = {}
    if disposition:
        kwargs["disposition"] = disposition
        if dparams.get("filename"):
            kwargs["filename"] = dparams["filename"]
    body = mail.body
    if maintype == "text" and not isinstance(body, bytes):
        message.set_content(body or "", subtype=subtype or "plain", **kwargs)
    else:
        data = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        message.set_content(data, maintype=maintype or "application", subtype=subtype or "octet-stream",
                            **kwargs)
    for key, value in params.items():
        if key != "charset":
            message.set_param(key, value)


def to_string(mail: MailBase) -> str:
    """The text of :func:`to_message` (CRLF line ends)."""
    message = to_message(mail)
    return message.as_bytes(policy=message.policy).decode("utf-8", "replace")
