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

import binascii
import copy
import email.quoprimime as quoprimime
import email.utils
import functools
import mimetypes
import os
import re
import time
from collections.abc import Iterable, Iterator
from email import policy
from email.headerregistry import Address, AddressHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage, Message
from email.parser import BytesParser, Parser
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard, cast

from lamson import bounce
from lamson import encoding as _encoding
from lamson.encoding import (
    ADDRESS_HEADERS,
    ATOM,
    LABEL,
    MAX_DEPTH,
    MAX_WORDS_PER_HEADER,
    PLAIN_ADDR,
    HeaderInjectionError,
    MailBase,
    canonical_body,
    canonical_header,
    canonical_name,
    clean_header,
    decode_header_text,
    decode_text,
    from_message,
    header_block_end,
    normal_name,
    screen,
    walk_with_depth,
)

if TYPE_CHECKING:
    from lamson.authres import AuthResults
    from lamson.envelope import Envelope
    from lamson.identity import Identity

__all__ = [
    "ROUTABLE_TO_HEADER",
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
#: How we parse. Both policies store a header exactly as read (the same
#: ``header_source_parse``), so parsing is identical; they differ in what a
#: lookup returns: the modern policy builds an ``email.headerregistry`` object
#: on every ``get`` (most of the cost of reading a message), compat32 hands back
#: the stored text. Our accessors decode that text themselves; ``to_message()``
#: switches the parts to :data:`READ_POLICY` before a handler sees them, so a
#: handler gets the modern API, and pays for it only when it asks.
PARSE_POLICY = policy.compat32
#: How we write: CRLF, headers folded at 78, and 7bit transfer encodings only
#: (so 8-bit bodies become quoted-printable or base64, never raw 8-bit).
WRITE_POLICY = policy.SMTP.clone(cte_type="7bit")
#: How we write a message to or from an address with a non-ASCII local part (RFC 6532:
#: UTF-8 header values; the relay sends it with SMTPUTF8). Bodies stay 7bit.
UTF8_POLICY = WRITE_POLICY.clone(utf8=True)

#: The header a :class:`MailRequest` routes on when its envelope recipient is
#: unknown (a message read back from a Maildir queue), as in Lamson 1.x. An
#: application that stores mail by its ``Delivered-To`` may set it to that.
ROUTABLE_TO_HEADER = "to"

#: Address headers the stdlib parses and renders as address lists itself. The
#: other :data:`~lamson.encoding.ADDRESS_HEADERS` (Return-Path, Delivered-To,
#: Errors-To, Disposition-Notification-To) are unstructured to the stdlib, so
#: we render them to ASCII text ourselves and parse them as address lists.
_STDLIB_ADDRESS_HEADERS = frozenset(
    name
    # typeshed types header_factory as a callable; it is the stdlib's HeaderRegistry
    for name, kind in WRITE_POLICY.header_factory.registry.items()  # type: ignore[attr-defined]
    if isinstance(kind, type) and issubclass(kind, AddressHeader)
)


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
        if "(" in value and comment_depth(value) > MAX_COMMENT_DEPTH:  # parseaddr recurses per level
            value = bounce.strip_comments(value)
        try:
            value = email.utils.parseaddr(value)[1] or value
        except Exception:  # noqa: BLE001 - an address no parser reads is kept as it came
            pass
    return value.lower()


#: Characters an envelope address must not carry into a header we fill in.
_UNSAFE_ENVELOPE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029<>]")


def _unfolded_raw(message: Message, name: str) -> list[str]:
    """The raw stored values of a header (the parser keeps them undecoded)."""
    lowered = name.lower()
    return [str(value) for key, value in message.raw_items() if key.lower() == lowered]


class MailRequest:
    """An incoming message: envelope plus the raw bytes, parsed on first use.

    ``From``/``To`` are the SMTP envelope (MAIL FROM / one RCPT TO), bare and
    lowercased for routing; ``""`` is the null sender ``<>``, None unknown.
    ``Data`` and ``original`` are the bytes exactly as received (a ``str`` is
    stored as its UTF-8 bytes). Nothing here raises on malformed mail: a
    message over the limits keeps its raw bytes and the reason in
    :attr:`refused`, and reads as having fewer (or no) headers and parts.
    """

    #: The spool envelope the message arrived with (set by the router worker), else None.
    envelope: Envelope | None = None
    #: Sender authentication (SPF, DKIM, DMARC: :class:`lamson.authres.AuthResults`), set by the
    #: router worker when ``auth_results`` is on, else None.
    auth: AuthResults | None = None
    #: The 1.x view (:attr:`base`), made on first use.
    _base: MailBase | None = None

    def __init__(
        self,
        Peer: Any,  # noqa: N803
        From: str | None,  # noqa: N803
        To: str | list[str] | tuple[str, ...] | None,  # noqa: N803
        Data: bytes | str,  # noqa: N803
    ) -> None:
        self.Peer = Peer
        self.From = _envelope_address(From)
        self.To: str | list[str] | None
        if isinstance(To, list | tuple):
            self.To = [a for a in (_envelope_address(t) for t in To) if a]
        else:
            self.To = _envelope_address(To)
        if isinstance(Data, str):
            Data = Data.encode("utf-8", "surrogateescape")
        self.Data: bytes = bytes(Data)
        self.original: bytes = self.Data
        self._message: EmailMessage | None = None
        self._header_index: dict[str, list[str]] | None = None
        self._handed_out = False
        self._refused: str | None = None
        self._modified = False
        self._identity: Identity | None = None
        # The envelope we were given, before any header fallback: it decides
        # which missing headers are filled in when the message is parsed.
        self._envelope_from = self.From
        self._envelope_to = self.To
        if self.From is None or self.To is None:
            # Unknown envelope (a message read back from a queue): Lamson 1.x took
            # the addresses from the headers. This parses now, but only for such
            # messages; mail from the receiver always has its envelope.
            self._from_headers()

    def _from_headers(self) -> None:
        """Fill an unknown envelope From/To from the From and :data:`ROUTABLE_TO_HEADER` headers."""
        if self.From is None:
            senders = self.addresses("from")
            if senders and senders[0][1]:
                self.From = senders[0][1].lower()
        if self.To is None:
            rcpts = list(dict.fromkeys(a.lower() for _, a in self.addresses(ROUTABLE_TO_HEADER) if a))
            if len(rcpts) == 1:
                self.To = rcpts[0]
            elif rcpts:
                self.To = rcpts

    @property
    def route_to(self) -> set[str]:
        """Every recipient this message is routed for: bare, lowercased addresses (1.x's ``route_to``)."""
        if self.To is None:
            return set()
        rcpts = self.To if isinstance(self.To, list) else [self.To]
        return {bare for bare in (_envelope_address(r) for r in rcpts) if bare}

    @property
    def route_from(self) -> str | None:
        """The sender to keep conversation state for: bare and lowercased; None for ``<>`` or unknown.

        Anyone can write it: act on :attr:`sender` for anything that matters.
        """
        return self.From or None

    @property
    def identity(self) -> Identity:
        """Who sent this, verified how, or why nobody is (:mod:`lamson.identity`)."""
        if self._identity is None:
            from lamson.identity import identify

            self._identity = identify(self)
        return self._identity

    @property
    def sender(self) -> str | None:
        """The verified sender (bare, lowercased): the submission user who authenticated, else the From
        author when DMARC (or aligned SPF/DKIM) shows their domain sent it; None when nothing verified
        anyone (``identity.reason`` says why). Act on this, never on ``From`` or the From header."""
        return self.identity.address

    # ------------------------------------------------------------------ parsing

    @property
    def refused(self) -> str | None:
        """Why this message was only partly parsed (see :func:`lamson.encoding.screen`), or None."""
        self._parsed()
        return self._refused

    def _parsed(self) -> EmailMessage:
        """The parsed message as our accessors read it (raw header values: :data:`PARSE_POLICY`)."""
        if self._message is None:
            self._message, self._refused = _parse(self.Data)
            self._fill_missing_headers(self._message)
        return self._message

    def _fill_missing_headers(self, message: EmailMessage) -> None:
        """Give a message without From/To headers the envelope's, as Lamson 1.x did.

        Handlers reading ``message['from']`` (as 1.x code does to reply) then
        see who sent it even when the client wrote no header. Only the parsed view changes: :attr:`Data` and
        :meth:`as_bytes` stay the bytes received until a handler edits a header.
        """
        filled = (("From", self._envelope_from), ("To", self._envelope_to))
        for name, value in filled:
            if not value or name in message:
                continue
            text = ", ".join(value) if isinstance(value, list) else value
            if _UNSAFE_ENVELOPE.search(text):
                continue  # never let an odd envelope address become header syntax
            try:
                # As the modern policy would store it (a header object): under the parse policy bare
                # text would be written unencoded, and a later re-rendering would fail on it.
                message[name] = READ_POLICY.header_factory(name, text)
            except Exception:  # noqa: BLE001 - a header we cannot add is just not added
                continue

    def _modern(self) -> EmailMessage:
        """The parsed message switched to :data:`READ_POLICY`: what handlers get and edits go through.

        A header set under compat32 would be stored as bare text and written
        unencoded (or not at all); under the modern policy it becomes a
        header object that renders with RFC 2047 encoded words.
        """
        message = self._parsed()
        if message.policy is not READ_POLICY:
            for _, part in walk_with_depth(message):
                part.policy = READ_POLICY
        return message

    def to_message(self) -> EmailMessage:
        """The parsed ``email.message.EmailMessage`` (the same object each call), modern policy."""
        self._handed_out = True
        return self._modern()

    @property
    def base(self) -> MailBase:
        """Lamson 1.x's :class:`lamson.encoding.MailBase` of this message (``headers``, ``content_encoding``,
        ``body``, ``parts``): a copy, made on first use and again after a header changes; editing it does
        not change the message (what is forwarded or stored stays :attr:`Data` or :meth:`as_bytes`)."""
        if self._base is None or self._handed_out:
            self._base = from_message(self._parsed())
        return self._base

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
        return [_decode_header(name, raw) for raw in self._raw(name)]

    def _raw(self, name: str) -> list[str]:
        """The stored values of the top-level ``name`` headers, from an index made once per version."""
        if self._handed_out:  # a handler may have edited the EmailMessage itself: read it afresh
            return _unfolded_raw(self._parsed(), name)
        if self._header_index is None:
            index: dict[str, list[str]] = {}
            for key, value in self._parsed().raw_items():
                index.setdefault(key.lower(), []).append(str(value))
            self._header_index = index
        return self._header_index.get(name.lower(), [])

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if self._handed_out:
            return name in self._parsed()
        return bool(self._raw(name))  # the header index, not a scan of every header

    def keys(self) -> list[str]:
        """Header names in message order (repeats included), normalised as Lamson 1.x did (``Message-Id``)."""
        return [normal_name(key) for key, _ in self._parsed().raw_items()]

    def items(self) -> list[tuple[str, str]]:
        return [(key, _decode_header(key, str(raw))) for key, raw in self._parsed().raw_items()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __setitem__(self, name: str, value: str | None) -> None:
        """Replace every ``name`` header with one (checked by :func:`lamson.encoding.clean_header`).

        None removes the header, as it did in Lamson 1.x.
        """
        message = self._modern()
        del message[name]
        if value is not None:
            message[name] = clean_header(name, value)
        self._modified = True
        self._header_index = None
        self._base = None

    def __delitem__(self, name: str) -> None:
        del self._modern()[name]
        self._modified = True
        self._header_index = None
        self._base = None

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """``(display name, address)`` pairs from every ``name`` header."""
        pairs: list[tuple[str, str]] = []
        for raw in self._raw(name):
            pairs.extend(address_pairs(name, raw))
        return pairs

    # ------------------------------------------------------------------ content

    def walk(self) -> Iterator[Message]:
        """Every part under the message, nested containers included, depth first (no recursion, so no
        depth crash). As in Lamson 1.x the message itself is not one of them: a single-part message has
        none."""
        for depth, part in walk_with_depth(self._parsed()):
            if depth:
                yield part

    def all_parts(self) -> list[Message]:
        """The message's top-level parts, as in Lamson 1.x: ``[]`` for a single-part message."""
        message = self._parsed()
        payload = message.get_payload() if message.is_multipart() else None
        return [part for part in payload if isinstance(part, Message)] if isinstance(payload, list) else []

    def _leaves(self) -> list[Message]:
        """The content parts (not containers) in order; the message itself when it is single-part."""
        return [part for _, part in walk_with_depth(self._parsed()) if not part.is_multipart()]

    def body(self) -> str:
        """The text body: the first inline text/plain part, else the first text part; "" if none.

        Decoded with charset fallbacks; line ends are ``\\n``.
        """
        texts = [p for p in self._leaves() if p.get_content_maintype() == "text" and not _is_attachment(p)]
        chosen = next((p for p in texts if p.get_content_subtype() == "plain"), texts[0] if texts else None)
        return "" if chosen is None else part_text(chosen)

    def attachments(self) -> list[Attachment]:
        """Parts that are attachments (a disposition of attachment, or a file name)."""
        found = []
        for part in self._leaves():
            if _is_attachment(part):
                found.append(Attachment(_filename(part), part.get_content_type(), part_bytes(part)))
        return found

    def is_bounce(self, threshold: float = 0.3) -> bool:
        """True when this looks like a delivery failure report (see :mod:`lamson.bounce`)."""
        as_received = not self._modified and not self._handed_out  # Data is still what the headers say
        if threshold > 0 and as_received and bounce.surely_not_a_bounce(self):
            return False
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
    # _class: the parts are EmailMessage objects (to_message() hands them out under READ_POLICY).
    parser = cast("BytesParser[EmailMessage]", BytesParser(_class=EmailMessage, policy=PARSE_POLICY))
    if reason is None:
        try:
            single = _parse_single_part(data)
            if single is not None:
                return single, None
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
        return EmailMessage(policy=PARSE_POLICY), reason
    end = header_block_end(data)
    try:
        # Encoded-word floods: headers kept raw; _decode_header falls back to the linear decoder.
        return parser.parsebytes(data if end is None else data[: end + 4], headersonly=True), reason
    except Exception:  # noqa: BLE001
        return EmailMessage(policy=PARSE_POLICY), reason


_LINE_ENDS = re.compile(r"\r\n|\r|\n")
#: One line as the stdlib's feed parser splits text (universal line ends, kept).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)?")
#: A line the feed parser takes as part of the header block (its ``headerRE``, unanchored for ``match(s, pos)``).
_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")
#: All the complete lines (line end included) at the start of a text that the feed parser takes as headers.
_HEADER_LINES = re.compile(rf"(?:(?:{_HEADER_LINE.pattern})[^\r\n]*(?:\r\n|\r|\n))*")
#: A "From " line after the first one (the feed parser keeps it as a defect or makes it the body's first line).
_LATER_FROM_LINE = re.compile(r"[\r\n]From ")
#: Parses the header block alone (lamson.mail._parse_single_part).
_HEADER_PARSER = cast("Parser[EmailMessage]", Parser(_class=EmailMessage, policy=PARSE_POLICY))


def _parse_single_part(data: bytes) -> EmailMessage | None:
    """``data`` parsed as ``BytesParser(policy=PARSE_POLICY).parsebytes`` parses it, when it is not a
    multipart or message/* (None then: the caller parses it in full).

    The stdlib's feed parser reads a single-part body line by line through its
    buffered input (several Python calls a line) only to join the lines again:
    the payload is exactly the text after the header block. So the rest of the
    text becomes the payload in one slice, and the header block, when it is
    made of well-formed fields only, is split into fields by one regular
    expression (:func:`_header_fields`); any other header block goes through the
    stdlib's parser alone (headers only; the line that ends the block too, so
    the same defects are recorded). The header block ends where the feed parser
    ends it: at the first line its header pattern does not match (a blank line
    is dropped, another line is the body's first). tests/shared/test_mail_plain.py
    compares the two parses on random input.
    """
    text = data.decode("ascii", "surrogateescape")
    lines_end = pos = body = _HEADER_LINES.match(text).end()  # type: ignore[union-attr]  # matches everywhere
    if pos < len(text):
        # The line after the header lines: a last header line without a line end, or the one ending the
        # block, which is dropped when blank, else the body's first line.
        if _HEADER_LINE.match(text, pos):
            lines_end = pos = body = len(text)
        else:
            pos = _LINE.match(text, pos).end()  # type: ignore[union-attr]
            if text[body] in "\r\n":
                body = pos
    head = text[:pos]
    if "From " in head[1:] and _LATER_FROM_LINE.search(head):
        return None  # the parser may push a last "From " line back into the body: its rules, not ours
    message: EmailMessage | None = None
    if body == pos:  # no line of the body taken for a header line (the parser records a defect then)
        message = _header_fields(text[:lines_end])
    if message is None:
        message = _HEADER_PARSER.parsestr(head, headersonly=True)
    if message.get_content_maintype() in ("multipart", "message"):
        return None
    message.set_payload(text[body:])
    return message


#: One header field as the feed parser reads it: a name, a colon, the value's lines (continuations included).
_HEADER_FIELD = re.compile(r"([\041-\071\073-\176]+):([^\r\n]*(?:\r\n|\r|\n)?(?:[ \t][^\r\n]*(?:\r\n|\r|\n)?)*)")


def _header_fields(block: str) -> EmailMessage | None:
    """A message holding the fields of ``block`` (complete header lines) as the feed parser stores them
    under :data:`PARSE_POLICY`; None when ``block`` holds anything the parser records a defect for (a
    first line that is a continuation, a field without a name, an envelope line out of place).

    The stored form is compat32's ``header_source_parse``: the name as written,
    the value with the blanks after the colon dropped, continuation lines kept
    with their line ends, the trailing line end removed. A leading envelope
    ``From `` line becomes the unix-from, without its line end.
    """
    message = EmailMessage(policy=PARSE_POLICY)
    pos, size = 0, len(block)
    if block.startswith("From "):
        pos = _LINE.match(block).end()  # type: ignore[union-attr]
        message.set_unixfrom(block[:pos].rstrip("\r\n"))  # one line: at most one line end
    while pos < size:
        field = _HEADER_FIELD.match(block, pos)
        if field is None:
            return None
        message.set_raw(field[1], field[2].lstrip(" \t").rstrip("\r\n"))
        pos = field.end()
    return message



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


#: One mailbox in its plainest forms: ``a@b``, ``<a@b>``, ``Name Words <a@b>``, ``"Quoted, name" <a@b>``
#: (dot-atom local part, LDH domain, no comments, groups, escapes or encoded words). Most address
#: headers are like this; for them the result is the one the stdlib's parser gives (the tests compare
#: the two), without its cost. Anything else takes the stdlib's parser.
_SIMPLE_MAILBOX = re.compile(
    rf'[ \t]*(?:(?P<bare>{PLAIN_ADDR})'
    rf'|(?:(?P<words>{ATOM}(?:[ \t]+{ATOM})*)|"(?P<quoted>[ !#-\[\]-~]*)")?[ \t]*<(?P<angle>{PLAIN_ADDR})>)[ \t]*'
)


def _simple_mailbox(unfolded: str) -> tuple[str, str] | None:
    """``(display name, address)`` for a header holding one plain mailbox, else None."""
    found = _SIMPLE_MAILBOX.fullmatch(unfolded)
    if found is None:
        return None
    if found["bare"]:
        return "", found["bare"]
    words = found["words"]
    display = " ".join(words.split()) if words else (found["quoted"] or "")
    return display, found["angle"]


#: Comments nested deeper than this in an address header are removed before it is parsed: both of the
#: email package's address parsers recurse per level and raise RecursionError a few hundred levels down
#: (issue 21: a From of 2,000 nested comments). No mail program writes more than a few.
MAX_COMMENT_DEPTH = 32


def comment_depth(text: str) -> int:
    """How deep RFC 5322 comments nest in ``text`` (quoted strings and quoted pairs respected), linearly."""
    depth = deepest = 0
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")" and depth:
            depth -= 1
        elif ch == '"' and not depth:
            quoted = True
    return deepest


def address_pairs(name: str, raw: str) -> list[tuple[str, str]]:
    """``(display name, address)`` pairs of one raw address header value, as :meth:`MailRequest.addresses`
    reads them; never raises (lamson.authres reads the From header with it, so DMARC judges the author a
    handler sees)."""
    try:
        return _addresses(name, raw)
    except Exception:  # noqa: BLE001 - RecursionError, or a parser bug: no address read
        return []


def _addresses(name: str, raw: str) -> list[tuple[str, str]]:
    """Parse an address header; display names with encoded words are decoded by us.

    The stdlib's address parser puts a space between adjacent encoded words in
    a display name (RFC 2047 section 6.2 says drop it), so when the raw value
    has encoded words and ``getaddresses`` finds the same addresses, the names
    come from :func:`decode_header_text` instead. Comments nested deeper than
    :data:`MAX_COMMENT_DEPTH` are removed first (they are white space to an
    address, and the parsers would recurse on them).
    """
    if "(" in raw and comment_depth(raw) > MAX_COMMENT_DEPTH:
        raw = bounce.strip_comments(_LINE_ENDS.sub("", raw))
    unfolded = _LINE_ENDS.sub("", raw)
    if "=?" not in unfolded:
        simple = _simple_mailbox(unfolded)
        if simple is not None:
            return [simple]
        if "," in unfolded and '"' not in unfolded:  # a list of plain mailboxes: each must be one
            several = [_simple_mailbox(piece) for piece in unfolded.split(",")]
            if all(several):
                return [pair for pair in several if pair is not None]
    if raw.count("=?") > MAX_WORDS_PER_HEADER:  # the structured parser is quadratic in encoded words
        try:
            return [(decode_header_text(n), a) for n, a in email.utils.getaddresses([unfolded]) if a]
        except Exception:  # noqa: BLE001
            return []
    # Return-Path, Delivered-To, ... are unstructured to the stdlib: parse them as an address list.
    parse_as = name if name.lower() in _STDLIB_ADDRESS_HEADERS else "to"
    try:
        header = READ_POLICY.header_factory(parse_as, unfolded if raw.isascii() else decode_header_text(raw))
        pairs = [(a.display_name, a.addr_spec) for a in getattr(header, "addresses", ())]
    except Exception:  # noqa: BLE001
        try:
            return [(n, a) for n, a in email.utils.getaddresses([decode_header_text(raw)]) if a]
        except Exception:  # noqa: BLE001
            return []
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


def _first_raw(part: Message, name: str) -> str | None:
    """The first ``name`` header's stored text, whatever the part's policy; None when absent."""
    values = _unfolded_raw(part, name)
    return values[0] if values else None


def _is_attachment(part: Message) -> bool:
    if part.is_multipart():
        return False
    disposition = (_first_raw(part, "Content-Disposition") or "").split(";")[0].strip().lower()
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
    if "name" not in raw.lower():
        return None  # neither filename= nor name=: no need to parse the parameters
    name: Any = None
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        try:
            value = _first_raw(part, header)
            parsed = READ_POLICY.header_factory(header, _LINE_ENDS.sub("", value)) if value else None
            params = getattr(parsed, "params", None) or {}
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
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


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


def _is_pair(value: object) -> TypeGuard[tuple[str, str]]:
    """One (display name, address) pair, rather than a list of addresses."""
    return isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)


def _address_list(name: str, value: AddressLike | Iterable[AddressLike]) -> str | list[Address]:
    """Normalise an address header value; non-ASCII domains become IDNA (ASCII on the wire).

    Strings with a line break or control character are refused
    (:class:`HeaderInjectionError`); display names are quoted/encoded by the stdlib.
    """
    items: list[AddressLike]
    if isinstance(value, str | Address) or _is_pair(value):
        items = [value]
    else:
        items = list(value)
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
            if not _encoding.VALUE_IS_EMAIL_ADDRESS(text):  # the application says: text, not addresses
                out.append(text)
                continue
            if "(" in text and comment_depth(text) > MAX_COMMENT_DEPTH:  # e.g. a From copied from a request
                text = bounce.strip_comments(text)
            simple = _simple_mailbox(text) if "=?" not in text else None
            pairs = [simple] if simple is not None else email.utils.getaddresses([text])
            try:
                parsed = [_make_address(display, addr) for display, addr in pairs if addr]
            except ValueError:  # e.g. "zedshaw-AT-zedshaw.com", no address at all: kept as text, as 1.x did
                parsed = []
            if pairs and len(parsed) == len(pairs):
                out.extend(parsed)
            else:  # e.g. a group ("undisclosed-recipients:;"): the stdlib parses it when set
                out.append(text)
    addresses = [a for a in out if isinstance(a, Address)]
    if len(addresses) == len(out):
        return addresses
    return ", ".join(str(a) for a in out)


def _make_address(display: str, addr: str) -> Address:
    display = canonical_name(display)
    local, at, domain = addr.rpartition("@")
    if not at:
        return Address(display_name=display, addr_spec=addr)
    return Address(display_name=display, username=unquote_local(local), domain=_idna(domain))


_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def unquote_local(local: str) -> str:
    """The local part as data: ``"a b"`` → ``a b``, ``"a\\"b"`` → ``a"b``; an unquoted one as it is.

    An envelope address keeps the quoting it had in ``MAIL FROM`` (``"a
    b"@client.test``); ``Address`` quotes a username itself when it must, so
    handing it the quoted form would quote twice (``"\\"a b\\""@client.test``).
    """
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        return _QUOTED_PAIR.sub(r"\1", local[1:-1])
    return local


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
        #: Parts taken from a request by attach_all_parts, and that request's
        #: multipart subtype and parameters (None: it was not multipart).
        self._forwarded: list[Message] = []
        self._container: tuple[str, list[tuple[str, str]]] | None = None
        if From is not None:
            self["From"] = From
        if To is not None:
            self["To"] = To
        if Subject is not None:
            self["Subject"] = Subject

    # ------------------------------------------------------------------ headers

    def __setitem__(self, name: str, value: Any) -> None:
        """Replace ``name``; address headers accept a string, ``(name, addr)``, Address or a list.

        None removes the header, as in Lamson 1.x.
        """
        if value is None:
            clean_header(name, "")  # validates the header name
            self._remove(name)
            return
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
                if isinstance(value, list):
                    # As it is written, so that it reads the same after a round trip (Return-Path: <a@b>).
                    return str(_wire_value(name, value)) if lowered == "return-path" else \
                        ", ".join(str(a) for a in value)
                return str(value)
        return None

    def get(self, name: str, default: Any = None) -> Any:
        value = self[name]
        return default if value is None else value

    def __delitem__(self, name: str) -> None:
        self._remove(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        lowered = name.lower()
        return any(k.lower() == lowered for k, _ in self._headers)

    def keys(self) -> list[str]:
        """Header names in order, normalised as Lamson 1.x did (``Message-Id``)."""
        return [normal_name(k) for k, _ in self._headers]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

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

    @property
    def base(self) -> MailBase:
        """Lamson 1.x's :class:`lamson.encoding.MailBase` of this response as it renders now (headers,
        ``body``, ``parts``, ``content_encoding``): a copy; edit the response, not it."""
        return from_message(self.to_message())

    # ------------------------------------------------------------------ attachments

    def attach(
        self,
        filename: str | os.PathLike[str] | None = None,
        content_type: str | None = None,
        data: bytes | str | None = None,
        disposition: str | None = None,
    ) -> None:
        """Add an attachment. The type is guessed from the file name when not given.

        ``str`` data is sent as UTF-8 text; ``bytes`` are sent byte-exact (base64).
        Without ``data``, ``filename`` is a path on disk, read (as bytes) each
        time the response is rendered, as Lamson 1.x did; the attachment is
        named by its last component. That reads any file this process can, so
        never pass a name that came from a message.
        """
        path: Path | None = None
        if data is None:
            if filename is None:
                raise ValueError("attach() needs data=, or a filename= to read")
            path = Path(filename)
            filename = path.name
        if filename is not None:
            filename = os.fspath(filename)
        if content_type is None:
            guessed = mimetypes.guess_type(filename or "")[0]
            content_type = guessed or ("text/plain" if isinstance(data, str) else "application/octet-stream")
        if "/" not in content_type:
            raise ValueError(f"content_type {content_type!r} is not of the form type/subtype")
        if filename is not None:
            filename = canonical_header(str(filename))
        self.attachments.append(
            {
                "filename": filename,
                "content_type": content_type,
                "data": data,
                "path": path,
                "disposition": disposition or ("attachment" if filename else "inline"),
            }
        )

    def attach_part(self, part: Message) -> None:
        """Add an already built MIME part (e.g. one taken from a :class:`MailRequest`) as is."""
        self.parts.append(part)

    def attach_all_parts(self, mail_request: MailRequest) -> None:
        """Add the content of ``mail_request`` (copies), e.g. to forward it.

        A multipart request gives its top-level parts and its container type:
        a response with no body or attachments of its own renders as that same
        type (a forwarded multipart/alternative stays multipart/alternative,
        not multipart/mixed); with a body of its own, the forwarded parts come
        after it, still grouped in their container. A single-part request
        gives one part carrying only its content headers (its From, To,
        Received, ... stay behind).
        """
        message = mail_request.to_message()
        if message.is_multipart() and isinstance(message.get_payload(), list):
            subtype = message.get_content_subtype()
            params = [(k, v) for k, v in (message.get_params() or [])[1:] if k.lower() != "boundary"]
            self._container = (subtype, [(k, str(v)) for k, v in params])
            self._forwarded.extend(copy.deepcopy(part) for part in message.iter_parts())
        else:
            self._forwarded.append(_content_only(message))

    def clear(self) -> None:
        """Drop attachments and attached parts (headers and bodies stay)."""
        self.attachments = []
        self.parts = []
        self._forwarded = []
        self._container = None

    # ------------------------------------------------------------------ rendering

    def to_message(self) -> EmailMessage:
        """A freshly built ``EmailMessage`` for the current headers, bodies and attachments."""
        self._stamp()
        message = EmailMessage(policy=UTF8_POLICY if self._needs_utf8() else WRITE_POLICY)
        for name, value in self._headers:
            wire = _wire_value(name, value)
            if isinstance(wire, str) and name.lower() in _STDLIB_ADDRESS_HEADERS \
                    and not _encoding.VALUE_IS_EMAIL_ADDRESS(wire):
                wire = _TEXT_HEADERS(name, wire)  # e.g. "zedshaw-AT-zedshaw.com": written as text
            message[name] = wire
        own_content = self.Body is not None or self.Html is not None or bool(self.attachments)
        if not own_content and self._forwarded and self._container is not None:
            self._render_forwarded(message)
            return self._finish(message)
        if self.Body is not None or (self.Html is None and not self.attachments and not self.parts
                                     and not self._forwarded):
            message.set_content(self.Body or "")
            _as_given(message, self.Body or "")
            if self.Html is not None:
                message.add_alternative(self.Html, subtype="html")
                _as_given(list(message.iter_parts())[-1], self.Html)
        elif self.Html is not None:
            message.set_content(self.Html, subtype="html")
            _as_given(message, self.Html)
        for spec in self.attachments:
            _add_attachment(message, spec)
        extra = list(self.parts)
        if self._forwarded:
            if self._container is None or self._container[0] == "mixed":
                extra[:0] = self._forwarded
            else:  # e.g. a forwarded multipart/alternative stays one alternative part
                extra.insert(0, _container_part(self._container, self._forwarded))
        if extra:
            if message.get_content_type() != "multipart/mixed":
                message.make_mixed()
            for part in extra:
                message.attach(part)  # type: ignore[arg-type]  # typeshed wants an EmailMessage; any Message attaches
        return self._finish(message)

    def _render_forwarded(self, message: EmailMessage) -> None:
        """Make ``message`` the forwarded message's own container type, holding its parts."""
        assert self._container is not None
        subtype, params = self._container
        message.set_type(f"multipart/{subtype}")
        for key, value in params:
            message.set_param(key, value)
        message.set_boundary(email.utils.make_msgid().strip("<>").replace("@", "."))
        for part in [*self._forwarded, *self.parts]:
            message.attach(part)  # type: ignore[arg-type]  # typeshed wants an EmailMessage; any Message attaches

    def _finish(self, message: EmailMessage) -> EmailMessage:
        """MIME-Version on the top only."""
        if "MIME-Version" not in message:
            message["MIME-Version"] = "1.0"
        for part in message.walk():
            if part is not message and not self._is_attached(part):
                del part["MIME-Version"]  # the stdlib adds it to sub-parts; it belongs on the top only
        return message

    def _needs_utf8(self) -> bool:
        """An address with a non-ASCII local part in any address header (see :meth:`as_bytes`)."""
        return any(isinstance(value, list) and any(not a.username.isascii() for a in value)
                   for _, value in self._headers)

    def _is_attached(self, part: Message) -> bool:
        return any(part is p for p in (*self.parts, *self._forwarded))

    def _stamp(self) -> None:
        """Add Date and Message-ID once, so every rendering of this response agrees."""
        if "Date" not in self:
            self._headers.append(("Date", _date_now()))
        if "Message-ID" not in self:
            domain = "lamson.localdomain"
            for name, value in self._headers:
                if name.lower() == "from" and isinstance(value, list) and value and value[0].domain:
                    domain = value[0].domain
            self._headers.append(("Message-ID", email.utils.make_msgid(domain=domain)))

    def as_bytes(self) -> bytes:
        """The message as RFC 5322 bytes: CRLF line ends, 7bit-safe, lines ≤ 998 octets.

        ASCII only, except for a message to or from an address with a
        non-ASCII local part: that one is an RFC 6532 message (UTF-8 headers,
        bodies still 7bit), because RFC 2047 forbids encoded words in an
        address and no ASCII form of such an address exists.
        """
        fast = self._plain_bytes()
        if fast is not None:
            return fast
        message = self.to_message()
        return message.as_bytes(policy=message.policy)

    def _plain_bytes(self) -> bytes | None:
        """The rendering of a plain reply, written directly; None when it is not one.

        A plain reply: a text body of ASCII lines of at most 78 characters, no
        HTML, attachments or parts, and headers that render verbatim (see
        :func:`_plain_header`). Most replies are, and for them the stdlib's
        ``email.headerregistry`` machinery costs ten times what the reply
        does. The bytes are the ones the stdlib writes for the same response
        (the tests render both ways and compare); anything else goes to it.
        """
        if self.Html is not None or self.attachments or self.parts or self._forwarded:
            return None
        # Headers first: a header that needs the stdlib makes the body's encoding wasted work.
        self._stamp()
        head = []
        for name, value in self._headers:
            line = _plain_header(name, value)
            if line is None:
                return None
            head.append(line)
        encoded = _text_body(self.Body or "")
        if encoded is None:
            return None
        cte, text = encoded
        head.extend(('Content-Type: text/plain; charset="utf-8"', f"Content-Transfer-Encoding: {cte}",
                     "MIME-Version: 1.0"))
        return "\r\n".join(head).encode("ascii") + b"\r\n\r\n" + text

    def __bytes__(self) -> bytes:
        return self.as_bytes()

    def __str__(self) -> str:
        return self.as_bytes().decode("ascii", "replace")

    def __repr__(self) -> str:
        return f"<MailResponse To={self['To']!r} Subject={self['Subject']!r}>"


#: The longest line the write policy leaves alone (header lines and 7bit body lines).
_MAX_LINE = WRITE_POLICY.max_line_length or 78
#: Bytes per base64 line the stdlib writes (four characters per three bytes, lines of at most _MAX_LINE).
_BASE64_STEP = _MAX_LINE // 4 * 3


def _text_body(body: str) -> tuple[str, bytes] | None:
    """``(transfer encoding, wire bytes)`` of a text body as ``set_content(body)`` and :func:`_as_given`
    write it under :data:`WRITE_POLICY`; None for text the stdlib should handle (lone surrogates).

    The stdlib's rule: 7bit when the text is ASCII in lines of at most 78
    octets; else whichever of quoted-printable and base64 is shorter on the
    first ten lines (CRLF-terminated), the UTF-8 bytes encoded with the same
    encoders it uses. Templated replies usually have a line over 78 octets or a
    quoted non-ASCII word, so this is what keeps them off ``email.message``
    (tests/shared/test_mail_plain.py compares the two on random text).
    """
    try:
        data = body.encode("utf-8")
    except UnicodeEncodeError:
        return None
    ends = body.endswith(("\n", "\r"))
    lines = data.splitlines()
    if body.isascii() and all(len(line) <= _MAX_LINE for line in lines):
        return "7bit", b"\r\n".join(lines) + (b"\r\n" if ends else b"")
    sniff = b"\r\n".join(lines[:10]) + b"\r\n"
    sniff_qp = quoprimime.body_encode(sniff.decode("latin-1"), _MAX_LINE)
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        data = b"\r\n".join(lines) + (b"\r\n" if ends else b"")
        payload = "".join(binascii.b2a_base64(data[i:i + _BASE64_STEP]).decode("ascii")
                          for i in range(0, len(data), _BASE64_STEP))
        return "base64", payload.replace("\n", "\r\n").encode("ascii")
    if len(lines) > 10:
        sniff_qp = quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _MAX_LINE)
    if not ends and sniff_qp.endswith("\n"):
        sniff_qp = sniff_qp[:-2] if sniff_qp.endswith("\r\n") else sniff_qp[:-1]
    return "quoted-printable", _LINE_ENDS.sub("\r\n", sniff_qp).encode("ascii")

#: Headers a plain reply must not set itself (the body's content headers come from the renderer).
_CONTENT_HEADERS = frozenset({"content-type", "content-transfer-encoding", "mime-version", "content-disposition"})
_PLAIN_TEXT = re.compile(r"[!-~]+(?: +[!-~]+)*")
#: Display names the stdlib writes as they are, or in plain double quotes when they hold a special.
_PLAIN_DISPLAY = re.compile(r"[!#-\[\]-~]+(?: [!#-\[\]-~]+)*")
_SPECIALS = frozenset('()<>@,:;.\"[]')
_PLAIN_LOCAL = re.compile(rf"{ATOM}(?:\.{ATOM})*")
_PLAIN_DOMAIN = re.compile(rf"{LABEL}(?:\.{LABEL})*")
_PLAIN_MSGID = re.compile(rf"<{PLAIN_ADDR}>")


def _date_now() -> str:
    """Now as a Date header value (RFC 5322, local time), made once per second."""
    second = int(time.time())
    if _DATE_NOW[0] != second:
        _DATE_NOW[:] = [second, email.utils.formatdate(second, localtime=True)]
    return str(_DATE_NOW[1])


_DATE_NOW: list[Any] = [None, ""]


@functools.lru_cache(maxsize=256)
def _canonical_date(value: str) -> bool:
    """True when the stdlib writes this Date value back unchanged (replies of one second share theirs)."""
    try:
        return bool(email.utils.format_datetime(email.utils.parsedate_to_datetime(value)) == value)
    except (TypeError, ValueError):
        return False


def _plain_header(name: str, value: Any) -> str | None:
    """``Name: value`` when the stdlib would write exactly that (one short ASCII line), else None."""
    lowered = name.lower()
    if lowered in _CONTENT_HEADERS:
        return None
    value = _wire_value(name, value)
    if isinstance(value, list):
        rendered = []
        for address in value:
            if not isinstance(address, Address) or not _PLAIN_LOCAL.fullmatch(address.username) \
                    or not _PLAIN_DOMAIN.fullmatch(address.domain):
                return None
            display = address.display_name
            if display and not _PLAIN_DISPLAY.fullmatch(display):
                return None
            if not _SPECIALS.isdisjoint(display):
                display = f'"{display}"'  # the stdlib's quoting, for a name without " or \\ in it
            spec = f"{address.username}@{address.domain}"
            rendered.append(f"{display} <{spec}>" if display else spec)
        if not rendered:
            return None
        text = ", ".join(rendered)
    elif isinstance(value, str):
        if lowered in _STDLIB_ADDRESS_HEADERS:
            return None  # text the address parser did not take (a group, ...): the stdlib renders it
        if "=?" in value or not _PLAIN_TEXT.fullmatch(value):
            return None
        if lowered == "date" and not _canonical_date(value):
            return None
        elif lowered == "message-id" and not _PLAIN_MSGID.fullmatch(value):
            return None
        text = value
    else:
        return None
    line = f"{name}: {text}"
    if len(line) <= _MAX_LINE:
        return line
    if isinstance(value, list) or lowered in ("date", "message-id"):
        return None
    return _folded(name, text)


def _folded(name: str, text: str) -> str | None:
    """A long unstructured ASCII header folded as the stdlib's folder does it; None where it would encode.

    The stdlib moves the whole value to the next line when it fits there;
    else it fills lines greedily with the value's words and runs of spaces,
    starting a new line at a token that does not fit, with one space taken
    from the end of the line before. A word too long for a line of its own is
    written as encoded words: that case is left to the stdlib.
    """
    if len(text) + 1 <= _MAX_LINE:
        return f"{name}:\r\n {text}"
    lines = [f"{name}: "]
    for token in _TOKENS.findall(text):
        if len(token) <= _MAX_LINE - len(lines[-1]):
            lines[-1] += token
            continue
        if len(token) + 1 > _MAX_LINE:
            return None
        stolen = ""
        if lines[-1].endswith(" "):
            stolen, lines[-1] = " ", lines[-1][:-1]
        if not stolen and not token.startswith(" "):
            return None
        lines.append(stolen + token)
    return "\r\n".join(lines)


_TOKENS = re.compile(r" +|[^ ]+")


#: Builds headers the stdlib writes as text whatever their name (RFC 2047 encoded where needed).
_TEXT_HEADERS = HeaderRegistry(default_class=UnstructuredHeader, use_default_map=False)


def address_header_value(name: str, text: str) -> Any:
    """What to set for address header ``name`` holding ``text`` (lamson.encoding.to_message): its
    addresses, or, when :func:`lamson.encoding.VALUE_IS_EMAIL_ADDRESS` says it holds none, the text."""
    value = _wire_value(name, _address_list(name, text))
    if isinstance(value, str) and not _encoding.VALUE_IS_EMAIL_ADDRESS(value):
        return _TEXT_HEADERS(name, value)
    return value


def _wire_value(name: str, value: Any) -> Any:
    """A stored header value as the stdlib should get it.

    The stdlib renders To/From/Cc/... from ``Address`` objects itself; for the
    address headers it treats as unstructured (Return-Path, Delivered-To,
    Errors-To, Disposition-Notification-To) we write ASCII text: display
    names RFC 2047 encoded, and Return-Path as the ``<addr>`` path RFC 5322 wants.
    """
    if not isinstance(value, list) or name.lower() in _STDLIB_ADDRESS_HEADERS:
        return value
    lowered = name.lower()
    if lowered == "return-path":
        return "<" + (value[0].addr_spec if value else "") + ">"
    if lowered == "delivered-to":
        return ", ".join(a.addr_spec for a in value)
    return ", ".join(email.utils.formataddr((a.display_name, a.addr_spec), charset="utf-8") for a in value)


def _as_given(part: Message, text: str) -> None:
    """Take back the line end ``set_content`` adds after ``text`` when the text ended without one.

    Lamson 1.x sent a body exactly as given (``Body="The body."`` reads back as
    ``"The body."``), and 1.x applications compare bodies that way; the stdlib
    always ends the last line. Line ends inside the text stay CRLF on the wire.
    """
    if text.endswith(("\n", "\r")):
        return
    cte = str(part.get("Content-Transfer-Encoding", "")).lower()
    if cte == "base64":
        data = part.get_payload(decode=True)
        if isinstance(data, bytes) and data.endswith(b"\n"):
            data = data[:-2] if data.endswith(b"\r\n") else data[:-1]
            step = (part.policy.max_line_length or 76) // 4 * 3
            part.set_payload("".join(binascii.b2a_base64(data[i:i + step]).decode("ascii")
                                     for i in range(0, len(data), step)))
        return
    payload = part.get_payload()
    if isinstance(payload, str) and payload.endswith("\n"):
        part.set_payload(payload[:-2] if payload.endswith("\r\n") else payload[:-1])


def _content_only(message: Message) -> Message:
    """A copy of a single-part message keeping only its content (Content-* headers and payload)."""
    part = copy.deepcopy(message)
    for name in set(part.keys()):
        if not name.lower().startswith("content-"):
            del part[name]
    return part


def _container_part(container: tuple[str, list[tuple[str, str]]], parts: list[Message]) -> EmailMessage:
    """A multipart/SUBTYPE part holding ``parts``: a forwarded container kept whole."""
    subtype, params = container
    holder = EmailMessage(policy=WRITE_POLICY)
    holder.set_type(f"multipart/{subtype}")
    for key, value in params:
        holder.set_param(key, value)
    holder.set_boundary(email.utils.make_msgid().strip("<>").replace("@", "."))
    for part in parts:
        holder.attach(part)  # type: ignore[arg-type]  # typeshed wants an EmailMessage; any Message attaches
    return holder


def _add_attachment(message: EmailMessage, spec: dict[str, Any]) -> None:
    maintype, _, subtype = spec["content_type"].partition("/")
    data = spec["data"]
    if data is None:
        data = spec["path"].read_bytes()  # attach(filename=...) reads the file when rendering
    kwargs: dict[str, Any] = {"disposition": spec["disposition"]}
    if spec["filename"]:
        kwargs["filename"] = spec["filename"]
    if isinstance(data, str):
        if maintype == "text":
            message.add_attachment(data, subtype=subtype, **kwargs)
            _as_given(list(message.iter_parts())[-1], data)  # attached as given, as 1.x did
            return
        data = data.encode("utf-8")
    message.add_attachment(bytes(data), maintype=maintype, subtype=subtype, **kwargs)
