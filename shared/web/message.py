"""One stored message as the pages show it: headers, MIME tree, text, sanitised HTML, parts.

Everything here reads mail anyone could have sent, so the work per message is bounded: at most
:data:`PARSE_LIMIT` bytes are parsed, the MIME tree is walked to :data:`MAX_DEPTH` levels and
:data:`MAX_PARTS` parts, header values are cut at :data:`MAX_HEADER` characters, unknown or broken
charsets decode as UTF-8 with replacement characters, and no parse error escapes (a message that
cannot be parsed shows as its raw bytes). The HTML part is cleaned by nh3 (the ammonia sanitiser)
and served under a sandboxing Content-Security-Policy (lamson.web.mail_api), so a message's HTML can
neither run a script nor fetch anything unless the reader asks for its remote images.
"""

from __future__ import annotations

import base64
import codecs
import email.message
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from typing import Any

import nh3

from lamson.html import url_is_safe

#: Bytes of a message parsed for its structure and text (the raw source is always served whole).
PARSE_LIMIT = 8 * 1024 * 1024
#: Deepest MIME nesting walked, and most parts listed.
MAX_DEPTH = 24
MAX_PARTS = 400
#: Most ``boundary`` parameters a message may hold to be parsed as MIME (see :func:`parse`).
MAX_BOUNDARIES = 500
#: Longest header value kept (characters).
MAX_HEADER = 8 * 1024
#: Longest text shown (characters) and HTML sanitised (characters).
MAX_TEXT = 2 * 1024 * 1024
MAX_HTML = 4 * 1024 * 1024
#: ``cid:`` images inlined as ``data:`` URLs (the frame's policy allows no other source) up to this size each.
MAX_INLINE_IMAGE = 2 * 1024 * 1024

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def parse(data: bytes) -> email.message.Message:
    """The message's structure (the first :data:`PARSE_LIMIT` bytes), never raising.

    MIME nested deeper than the parser's recursion allows (thousands of levels) raises inside the
    standard library, after seconds of work: a message with more than :data:`MAX_BOUNDARIES`
    boundaries, or one the parser fails on, is its headers and its body as one text part, and when
    even the headers cannot be read, an empty message.
    """
    try:
        # Most mail is one part: its headers parsed, the body kept as it is, is all there is to it.
        top = BytesParser(policy=compat32).parsebytes(data[:PARSE_LIMIT], headersonly=True)
        if top.get_content_maintype() not in ("multipart", "message"):
            return top
        # Each multipart level names a boundary: past MAX_BOUNDARIES the standard parser would spend
        # seconds recursing before it gives up, so such a message is read as headers and text at once.
        if data[:PARSE_LIMIT].lower().count(b"boundary") <= MAX_BOUNDARIES:
            return BytesParser(policy=compat32).parsebytes(data[:PARSE_LIMIT])
    except Exception:  # noqa: BLE001 - hostile input: a parse error must not become a 500
        pass
    try:
        head, _, body = data[:PARSE_LIMIT].partition(b"\r\n\r\n" if b"\r\n\r\n" in data[:65536] else b"\n\n")
        msg = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n")
        for name in ("Content-Type", "Content-Transfer-Encoding"):
            del msg[name]
        msg.set_payload(body.decode("utf-8", "replace"), "utf-8")
        return msg
    except Exception:  # noqa: BLE001
        return email.message.Message()


def header_text(value: Any) -> str:
    """A header value as text: RFC 2047 words decoded, folding and control characters gone, bounded."""
    if value is None:
        return ""
    raw = str(value)[:MAX_HEADER]
    try:
        text = str(make_header(decode_header(raw)))
    except Exception:  # noqa: BLE001 - bad encoded words, unknown charsets
        text = raw
    return _CONTROLS.sub(" ", text.replace("\r", "").replace("\n", " ")).strip()


def header(msg: email.message.Message, name: str) -> str:
    """One header's text (the first of its kind), or ""."""
    try:
        return header_text(msg.get(name))
    except Exception:  # noqa: BLE001
        return ""


def message_ids(value: str) -> list[str]:
    """The ``<id>`` tokens of a Message-ID / In-Reply-To / References value, in order (at most 100)."""
    return re.findall(r"<[^<>\s]{1,500}>", value)[:100]


def addresses(value: str) -> list[str]:
    """The bare addresses of an address header."""
    try:
        return [addr for _, addr in getaddresses([value]) if addr]
    except Exception:  # noqa: BLE001
        return []


def charset_of(part: email.message.Message) -> str:
    """A codec Python knows for the part's charset (UTF-8 when it names none, or one nobody knows)."""
    try:
        name = part.get_content_charset() or "utf-8"
        codecs.lookup(name)
        return name
    except (LookupError, ValueError, TypeError):
        return "utf-8"


def payload_bytes(part: email.message.Message) -> bytes:
    """The part's body, transfer-decoded (base64, quoted-printable); b"" for containers."""
    if part.is_multipart():
        return b""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        return b""
    return data if isinstance(data, bytes) else b""


def part_text(part: email.message.Message, limit: int = MAX_TEXT) -> str:
    """A text part decoded with its charset (replacement characters where it lies), at most ``limit`` characters."""
    data = payload_bytes(part)[: limit * 4]
    try:
        text = data.decode(charset_of(part), errors="replace")
    except Exception:  # noqa: BLE001 - codecs that fail on some input despite errors="replace"
        text = data.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n")[:limit]


def content_type(part: email.message.Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # noqa: BLE001
        return "text/plain"


def disposition(part: email.message.Message) -> str | None:
    try:
        value = part.get_content_disposition()
    except Exception:  # noqa: BLE001
        return None
    return str(value) if value else None


def filename(part: email.message.Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        return None
    if not name:
        return None
    return header_text(name)[:255] or None


def children(part: email.message.Message) -> list[email.message.Message]:
    """The parts directly inside ``part`` (a multipart, or a message/rfc822 holding one message)."""
    if not part.is_multipart():
        return []
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, email.message.Message)] if isinstance(payload, list) else []


def walk(msg: email.message.Message) -> Iterator[tuple[str, email.message.Message]]:
    """``(path, part)`` for every leaf and container below the top, depth first, IMAP-style paths.

    A multipart message's parts are "1", "2", ...; their parts "1.1", ...; a message that is not
    multipart has one part, "1", its body. Bounded by :data:`MAX_DEPTH` and :data:`MAX_PARTS`.
    """
    count = 0
    stack: list[tuple[str, email.message.Message, int]] = []
    top = children(msg)
    if not top and not msg.is_multipart():
        yield "1", msg
        return
    stack.extend(reversed([(str(i + 1), p, 1) for i, p in enumerate(top)]))
    while stack and count < MAX_PARTS:
        path, part, depth = stack.pop()
        count += 1
        yield path, part
        if depth < MAX_DEPTH:
            stack.extend(reversed([(f"{path}.{i + 1}", p, depth + 1) for i, p in enumerate(children(part))]))


def find_part(msg: email.message.Message, path: str) -> email.message.Message | None:
    """The part at ``path`` (as :func:`walk` numbers them), or None."""
    for found, part in walk(msg):
        if found == path:
            return part
    return None


def tree(msg: email.message.Message) -> list[dict[str, Any]]:
    """The MIME tree as the API gives it: ``[{"path", "content_type", "filename", "size", "disposition",
    "children"}]``."""
    nodes: dict[str, dict[str, Any]] = {}
    roots: list[dict[str, Any]] = []
    for path, part in walk(msg):
        node: dict[str, Any] = {"path": path, "content_type": content_type(part), "filename": filename(part),
                "size": len(payload_bytes(part)), "disposition": disposition(part), "children": []}
        nodes[path] = node
        parent = nodes.get(path.rpartition(".")[0]) if "." in path else None
        (parent["children"] if parent is not None else roots).append(node)
    return roots


def is_attachment(part: email.message.Message) -> bool:
    """A part a mail reader lists as an attachment: disposition attachment, or a named non-text leaf."""
    if part.is_multipart():
        return False
    if disposition(part) == "attachment":
        return True
    return filename(part) is not None and not content_type(part).startswith("text/")


def first_body(msg: email.message.Message, wanted: str) -> email.message.Message | None:
    """The first ``wanted`` (text/plain or text/html) part that is not an attachment."""
    for _, part in walk(msg):
        if content_type(part) == wanted and not is_attachment(part):
            return part
    return None


class _TextOfHtml(HTMLParser):
    """Text of an HTML body: script and style dropped, block elements as line breaks, bounded output."""

    BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote",
                        "pre", "hr", "section", "article", "header", "footer"})

    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.size = 0
        self.limit = limit
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self._add("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self._add("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self._add(data)

    def _add(self, text: str) -> None:
        if self.size < self.limit:
            self.out.append(text)
            self.size += len(text)

    def text(self) -> str:
        joined = re.sub(r"[ \t\r\f\v]+", " ", "".join(self.out))
        return re.sub(r"\n\s*\n\s*(\n\s*)+", "\n\n", joined).strip()[: self.limit]


def html_to_text(source: str, limit: int = MAX_TEXT) -> str:
    """Readable text of an HTML body (for the Text tab and for search)."""
    parser = _TextOfHtml(limit)
    try:
        parser.feed(source[: limit * 4])
        parser.close()
    except Exception:  # noqa: BLE001 - HTMLParser is lenient; this is belt and braces
        pass
    return parser.text()


def text_of(msg: email.message.Message, limit: int = MAX_TEXT) -> str:
    """The text a person reads: the text/plain part, else the text of the HTML part, else ""."""
    plain = first_body(msg, "text/plain")
    if plain is not None:
        return part_text(plain, limit)
    rich = first_body(msg, "text/html")
    if rich is not None:
        return html_to_text(part_text(rich, limit), limit)
    return ""


def attachment_count(msg: email.message.Message) -> int:
    return sum(1 for _, part in walk(msg) if is_attachment(part))


_SCRIPTS = re.compile(r"(?is)<(script|style|head|title)\b[^>]*>.*?(?:</\1\s*>|$)")
_BREAKS = re.compile(r"(?i)<(?:br|/?p|/?div|/?tr|/?li|/?h[1-6]|/?table|/?blockquote|hr)\b[^>]*>")
_TAGS = re.compile(r"<[^>]*>")


def quick_html_text(source: str, limit: int) -> str:
    """The words of an HTML body, by regular expressions: for the search index, where thousands of
    messages are read at once and :func:`html_to_text`'s parser would cost most of the time.

    Linear in the input (each pattern's matches are disjoint and scanned once; an unclosed
    ``<script`` ends the text). Good enough for search and snippets, not for display.
    """
    text = _SCRIPTS.sub(" ", source[: limit * 2])
    text = _TAGS.sub(" ", _BREAKS.sub("\n", text))
    return " ".join(html.unescape(text).split())[:limit]


@dataclass(frozen=True)
class Survey:
    """One walk's findings: the first text and HTML bodies, and the attachments counted."""

    plain: email.message.Message | None
    rich: email.message.Message | None
    attachments: int


def survey(msg: email.message.Message) -> Survey:
    """:func:`first_body` for text/plain and text/html and :func:`attachment_count`, in one walk."""
    plain = rich = None
    attachments = 0
    for _, part in walk(msg):
        if is_attachment(part):
            attachments += 1
            continue
        ctype = content_type(part)
        if ctype == "text/plain" and plain is None:
            plain = part
        elif ctype == "text/html" and rich is None:
            rich = part
    return Survey(plain, rich, attachments)


def first_headers(msg: email.message.Message) -> dict[str, str]:
    """The first value of every header, by lower-case name (one pass instead of one scan per name)."""
    found: dict[str, str] = {}
    try:
        items = msg.items()
    except Exception:  # noqa: BLE001
        return found
    for name, value in items:
        found.setdefault(str(name).lower(), value if isinstance(value, str) else str(value))
    return found


# --- sanitised HTML --------------------------------------------------------------------------------

#: Tags kept in a message's HTML: ammonia's defaults (no script, style, iframe, object, embed, form,
#: input, base, meta, link) plus the presentational ones mail still uses.
HTML_TAGS = frozenset(nh3.ALLOWED_TAGS | {"font", "center", "span", "div"}) - {
    "script", "style", "iframe", "object", "embed", "form", "input", "button", "textarea", "select", "base",
    "meta", "link", "frame", "frameset", "applet", "svg", "math"}

#: Attributes kept on every tag, on top of ammonia's per-tag defaults.
GENERIC_ATTRIBUTES = frozenset({"style", "align", "valign", "width", "height", "bgcolor", "color", "border",
                                "cellpadding", "cellspacing", "dir", "lang", "title", "face", "size", "colspan",
                                "rowspan"})

#: CSS that can fetch: url(...) and its relatives (their argument, parentheses one level deep).
_CSS_URL = re.compile(r"(?:url|image|image-set|cross-fade|expression|src)\s*\((?:[^()]|\([^()]*\))*\)?", re.I)


@dataclass(frozen=True)
class Cleaned:
    """A message's HTML after nh3: the document to serve and how many remote images it held back."""

    document: str
    blocked_images: int


def sanitize_html(source: str, *, images: bool, inline: dict[str, str] | None = None) -> Cleaned:
    """``source`` (a message's HTML) with only harmless markup left, as a whole document.

    Scripts, frames, objects, forms, ``on*`` attributes and ``javascript:`` (any scheme but http(s)
    and mailto) go. Remote image sources are removed unless ``images``; ``cid:`` sources are
    replaced by the ``data:`` URLs in ``inline`` (content id → URL), since the frame's policy lets it
    load nothing else. ``url(...)`` in style attributes is removed unless ``images`` (CSS could fetch).
    """
    blocked = 0
    inline = inline or {}

    def keep(tag: str, name: str, value: str) -> str | None:
        nonlocal blocked
        if tag not in HTML_TAGS:
            return None  # removed with its element anyway; nothing to count
        if name == "src":
            if value.lower().startswith("cid:"):
                return inline.get(value[4:].strip("<>").lower())
            if value.lower().startswith("data:image/"):
                return value
            if not url_is_safe(value) or not re.match(r"(?i)\s*https?:", value):
                return None  # script, or a path on our own server: never an image of the message
            if not images:
                blocked += 1
                return None
            return value
        if name == "href":
            return value if url_is_safe(value) and not value.lower().startswith("data:") else None
        if name == "style" and not images and ("\\" in value or _CSS_URL.search(value)):
            blocked += 1
            if "\\" in value:  # CSS escapes could spell url( in a way no pattern here sees
                return None
            return _CSS_URL.sub("none", value)
        return value

    attributes = {tag: set(nh3.ALLOWED_ATTRIBUTES.get(tag, set())) for tag in HTML_TAGS}
    attributes["img"] = {"src", "alt", "width", "height", "title", "align", "border"}
    attributes["*"] = set(GENERIC_ATTRIBUTES)
    body = nh3.clean(source[:MAX_HTML], tags=set(HTML_TAGS), clean_content_tags={"script", "style"},
                     attributes=attributes, attribute_filter=keep, url_schemes={"http", "https", "mailto", "cid", "data"},
                     link_rel="noopener noreferrer nofollow", strip_comments=True)
    document = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\">"
                "<style>body{font-family:system-ui,sans-serif;margin:8px;overflow-wrap:anywhere}"
                "img{max-width:100%;height:auto}</style></head><body>\n" + body + "\n</body></html>\n")
    return Cleaned(document, blocked)


def inline_images(msg: email.message.Message) -> dict[str, str]:
    """``{content-id: data: URL}`` of the message's image parts with a Content-ID (bounded in size)."""
    found: dict[str, str] = {}
    for _, part in walk(msg):
        ctype = content_type(part)
        cid = header(part, "Content-ID").strip().strip("<>").lower()
        if not cid or not ctype.startswith("image/") or not re.fullmatch(r"image/[a-z0-9.+-]+", ctype):
            continue
        if ctype == "image/svg+xml":  # an SVG can hold script: never inlined
            continue
        data = payload_bytes(part)
        if len(data) <= MAX_INLINE_IMAGE:
            found[cid] = f"data:{ctype};base64," + base64.b64encode(data).decode("ascii")
    return found


def html_document(msg: email.message.Message, *, images: bool) -> Cleaned | None:
    """The message's HTML part, sanitised (:func:`sanitize_html`), or None when it has none."""
    rich = first_body(msg, "text/html")
    if rich is None:
        return None
    return sanitize_html(part_text(rich, MAX_HTML), images=images, inline=inline_images(msg))


def plain_document(text: str) -> str:
    """A text body as an HTML document (for a message without HTML, shown in the same frame)."""
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body><pre style=\"white-space:pre-wrap\">"
            + html.escape(text) + "</pre></body></html>\n")


def reply_fields(msg: email.message.Message) -> dict[str, str]:
    """What "Reply as the other side" pre-fills for a message the application sent.

    From = the address the application wrote to (its To), To = its Reply-To or From, the subject
    with one "Re: ", In-Reply-To its Message-ID, References its References plus its Message-ID.
    """
    to = addresses(header(msg, "To"))
    reply_to = addresses(header(msg, "Reply-To")) or addresses(header(msg, "From"))
    subject = header(msg, "Subject")
    if not re.match(r"(?i)re:", subject):
        subject = f"Re: {subject}".strip()
    mid = " ".join(message_ids(header(msg, "Message-ID"))[:1])
    refs = message_ids(header(msg, "References")) or message_ids(header(msg, "In-Reply-To"))
    references = " ".join([r for r in refs if r != mid] + ([mid] if mid else []))
    return {"mail_from": to[0] if to else "", "to": reply_to[0] if reply_to else "", "subject": subject,
            "in_reply_to": mid, "references": references}


def headers_list(msg: email.message.Message) -> list[list[str]]:
    """Every header as ``[name, decoded value]``, in order (bounded)."""
    out: list[list[str]] = []
    try:
        items = msg.items()
    except Exception:  # noqa: BLE001
        return out
    for name, value in items[:1000]:
        out.append([_CONTROLS.sub(" ", str(name))[:200], header_text(value)])
    return out


def display_from(msg: email.message.Message) -> str:
    """The From header as shown in lists: the decoded value."""
    return header(msg, "From")


def bare(value: str) -> str:
    """The address of a header value (``Name <a@b>`` → ``a@b``)."""
    try:
        return parseaddr(value)[1]
    except Exception:  # noqa: BLE001
        return ""
