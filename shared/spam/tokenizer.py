"""Mail to tokens: the facts about a message the classifier learns from.

A token is a short string with a prefix saying where it came from
(``subject:free``, ``from:domain:example.com``, ``url:host:example``,
``html:img``); plain body words have no prefix. Each message yields a *set*
(a word repeated a hundred times counts once: the classifier asks "does
this message contain it", which a repetitive spammer cannot inflate).

What is read, and why:

* **Headers a sender controls and that differ between senders**: Subject
  words, From/Reply-To addresses, domains and display-name words, the
  mailer, Content-Type and charsets, and a few facts (no Message-Id, no
  Date, Reply-To differing from From). Received lines give only the relay
  host's domain and IP prefix of the *first two* hops (the ones nearest to
  us are our own and say nothing about the sender). Other filters' verdicts
  (``X-Spam-*``, our own ``X-Spam-Classification``) are never read: learning
  them would learn the other filter, or feed our own verdict back to us.
  Recipient addresses are never read either, nor when the mail came: they
  say who collected it and when, not what it is. Only whether the
  sender's Date agrees with the arrival the first Received line stamps
  (``date:skew:hour`` ... ``date:skew:years``, ``date:future``): ratware
  forges dates.
* **Mailing lists' marks, as one fact**: a list's footer (a short
  block after a separator naming its subscription machinery) is removed
  from the text, a ``[tag]`` opening the Subject is not read as words, and
  the footer, the tag, List-Id/List-Unsubscribe and Precedence bulk/list
  all become the one token ``list:carried``. A list carries spam too, and
  its footer's words learnt from its ham made that spam look like ham; its
  marks counted one by one said the same thing four or five times (issue 25).
* **Message-Id**: its domain's shape, and whether it ends like the From
  address's domain (``message-id:from-domain:same``/``differs``).
* **Header order**: the order in which the sender's software wrote From, To,
  Cc, Subject, Date, Message-Id, MIME-Version, Content-Type, Reply-To and
  X-Mailer (``header:order:ftsd``): mail programs have habits.
* **MIME structure**: the content type of every part, attachment file
  extensions, encodings.
* **Text bodies** (text/plain and text/html), decoded with their charset
  (:func:`lamson.encoding.decode_text`): HTML tags are removed, but the
  facts spammers rely on are noted (images, fonts, hidden text, forms,
  scripts, comments splitting words), and every URL (in text or in
  ``href``/``src``) becomes its scheme, host pieces and path words.
* **Text facts**: money amounts (``text:money``), ``!!`` runs, text mostly
  in capitals (``text:shouting``): what lower-casing the words loses.
* **Words** lower-cased, stripped of surrounding punctuation; too short
  ones dropped, long ones summarised as ``skip:<first char> <length/10>``
  (random strings and base64 junk must not each become a new token).

Work is bounded (see :class:`lamson.spam.config.SpamConfig`): at most
``max_message_bytes`` are parsed, ``max_text_chars`` of text read,
``max_parts`` MIME parts visited and ``max_tokens`` tokens kept, so a
hostile message costs no more than a large ordinary one.
"""

from __future__ import annotations

import email.utils
import html
import re
from collections.abc import Iterable, Iterator
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any

from lamson.encoding import decode_header_text, decode_text, screen, walk_with_depth
from lamson.spam.config import SpamConfig

#: The header the filter writes; never read back (it would teach the filter its own verdicts).
CLASSIFICATION_HEADER = "X-Spam-Classification"

_COMPAT = BytesParser(policy=policy.compat32)
_WORD_STRIP = "\"'`.,;:!?()[]{}<>*~_=|\\/-+#$%&^"
_URL = re.compile(r"""(?i)\b(?:(https?|ftp)://|www\.)[^\s<>"'`{}|\\^\[\]]+""")
_EMAIL = re.compile(r"(?i)\b[a-z0-9._%+-]{1,64}@([a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})+)")
_TAG = re.compile(r"<\s*(/?)\s*([a-zA-Z][a-zA-Z0-9]{0,15})([^<>]{0,2000})>")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_SCRIPT_STYLE = re.compile(r"<\s*(script|style)\b[^>]*>.*?<\s*/\s*\1\s*>", re.S | re.I)
_ATTR_URL = re.compile(r"""(?i)\b(?:href|src|action)\s*=\s*["']?([^"'\s>]+)""")
_HIDDEN = re.compile(r"(?i)display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*[01](?:px|pt)?\b")
_MONEY = re.compile(r"[$€£]\s?\d")
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")
_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_RECEIVED_FROM = re.compile(r"(?i)^\s*from\s+(\S+)(?:\s+\(([^)]{0,200})\))?")
_BRACKET_IP = re.compile(r"\[(\d{1,3}(?:\.\d{1,3}){3})\]")
_HOSTLIKE = re.compile(r"^[a-z0-9-]+(?:\.[a-z0-9-]+)+$")
#: Headers whose presence (and, for the priority ones, value) says something about the sender's
#: software or the conversation. An allowlist, not "every header name": the names a collector's
#: own mail client adds (X-Keywords, X-Status, Delivery-Date, Delivered-To, ...) describe how the
#: mail was stored, and learning them would learn the collection instead of the mail.
_FACT_HEADERS = ("in-reply-to", "references", "organization", "mime-version", "content-disposition",
                 "x-mimeole", "x-originating-ip", "thread-index", "mail-followup-to")
_VALUE_HEADERS = ("x-priority", "x-msmail-priority", "importance", "precedence")
#: A list footer starts at a signature separator or a rule of underscores, dashes or equals signs...
_FOOTER_START = re.compile(r"^(?:-- ?|[_=*-]{10,})[ \t]*$", re.M)
#: ... and says what list it is and how to leave it (Mailman's, ezmlm's, SourceForge's sponsor blocks).
_FOOTER_WORDS = re.compile(r"(?i)listinfo|unsubscri|mailing list|list maintainer|subscription|sponsored by"
                           r"|-request@|list archive")
#: A list's tag at the start of a subject, after any Re:/Fwd: ("Re: [ILUG] ...").
_SUBJECT_TAG = re.compile(r"(?i)^\s*(?:(?:re|fwd?|aw)\s*:\s*)*\[[^\]\s]{1,30}\]")
#: Headers the sending software writes, whose order is a fact about that software (a letter each).
_ORDERED = {"from": "f", "to": "t", "cc": "c", "subject": "s", "date": "d", "message-id": "i",
            "mime-version": "m", "content-type": "y", "reply-to": "r", "x-mailer": "x"}
#: HTML tags worth a token of their own: what spam uses and plain mail rarely does.
_NOTED_TAGS = frozenset({"img", "font", "table", "form", "input", "script", "iframe", "object", "embed",
                         "map", "area", "style", "center", "b", "u", "blink", "marquee", "base", "meta"})


def tokenize(message: bytes | str | Message | Any, config: SpamConfig | None = None) -> set[str]:
    """The token set of a message given as bytes/str, an ``email.message.Message`` or a MailRequest."""
    config = config or SpamConfig()
    parsed, raw_body = _parse(message, config)
    tokens = _Tokens(config.max_tokens)
    _header_tokens(parsed, tokens)
    budget = _Budget(config.max_text_chars)
    if raw_body is not None:  # refused by the MIME limits: its raw text is all we read
        tokens.update(_text_tokens(raw_body[: config.max_text_chars], "text/plain", config, budget))
    else:
        _body_tokens(parsed, tokens, config, budget)
    return _one_list_mark(tokens.found)


#: The marks a mailing list leaves: its headers, its Precedence, its Subject tag, its footer.
_LIST_MARKS = frozenset({"header:list", "header:precedence:bulk", "header:precedence:list", "subject:list-tag",
                         "text:list-footer"})


def _one_list_mark(found: set[str]) -> set[str]:
    """The list's marks as one token, ``list:carried``: they are one fact, that a list carried the mail.

    Fisher's method treats every token as independent evidence; a list stamps all of its
    marks on every message it carries, spam included, so counted one by one the same fact
    spoke four or five times for whatever the list mostly carries (issue 25, docs/spam.md).
    """
    if found.isdisjoint(_LIST_MARKS):
        return found
    return (found - _LIST_MARKS) | {"list:carried"}


class _Tokens:
    """The tokens found, in the order found; cut to the first ``limit`` at the end.

    The work before the cut is bounded by the text budget, so collecting
    everything and cutting once is cheaper than checking the size per token.
    """

    def __init__(self, limit: int) -> None:
        self._found: dict[str, None] = {}
        self.limit = limit

    def add(self, token: str) -> None:
        self._found[token] = None

    def update(self, tokens: Iterable[str]) -> None:
        self._found.update(dict.fromkeys(tokens))

    @property
    def found(self) -> set[str]:
        """The tokens kept; none contains a line break (the store joins tokens with newlines)."""
        kept = list(self._found)[: self.limit]
        return {token if token.isprintable() else _BREAKS.sub(" ", token) for token in kept}


class _Budget:
    """Characters of decoded text still to be read for this message."""

    def __init__(self, chars: int) -> None:
        self.left = chars

    def take(self, text: str) -> str:
        taken = text[: max(self.left, 0)]
        self.left -= len(taken)
        return taken


# --------------------------------------------------------------------------- parsing


def _parse(message: Any, config: SpamConfig) -> tuple[Message, str | None]:
    """The parsed message, and the raw body text when the MIME limits refused its structure."""
    if isinstance(message, Message):
        return message, None
    to_message = getattr(message, "to_message", None)
    if callable(to_message) and getattr(message, "refused", "") is None:
        return to_message(), None  # a MailRequest, already parsed (or parsed now) within lamson.mail's limits
    if hasattr(message, "as_bytes"):
        message = message.as_bytes()
    data = message.encode("utf-8", "surrogateescape") if isinstance(message, str) else bytes(message)
    data = data[: config.max_message_bytes]
    if screen(data) is None:
        try:
            parsed = _COMPAT.parsebytes(data)
            if max(depth for depth, _ in walk_with_depth(parsed)) <= 50:
                return parsed, None
        except Exception:  # noqa: BLE001 - a parser failure means: read it as headers and text
            pass
    try:
        headers = _COMPAT.parsebytes(data, headersonly=True)
    except Exception:  # noqa: BLE001
        headers = Message()
    body_start = data.find(b"\n\n")
    body = data[body_start + 2:] if body_start >= 0 else data
    return headers, body.decode("utf-8", "replace")


def _header(message: Message, name: str) -> list[str]:
    """Every ``name`` header, decoded (RFC 2047, charset fallbacks); never raises."""
    try:
        values = message.get_all(name) or []
    except Exception:  # noqa: BLE001
        return []
    return _decoded(values)


def _decoded(values: list[Any]) -> list[str]:
    """Header values as text: unfolded, encoded words and 8-bit bytes decoded, each cut at 2000 characters."""
    out = []
    for value in values[:20]:
        text = str(value)
        if text.isascii() and "=?" not in text:
            out.append(" ".join(text.split())[:2000])  # nothing to decode: just unfold
            continue
        try:
            out.append(decode_header_text(text)[:2000])
        except Exception:  # noqa: BLE001
            continue
    return out


# --------------------------------------------------------------------------- headers


class _Headers:
    """The top-level headers by lower-cased name, decoded on first use.

    ``Message.get_all`` lower-cases every header name on every call; a message
    has dozens of headers and the tokenizer asks for about twenty names.
    """

    def __init__(self, message: Message) -> None:
        self._raw: dict[str, list[Any]] = {}
        try:
            items = message.items()
        except Exception:  # noqa: BLE001
            items = []
        #: The sender's own headers in the order they came (first of each): mail software has a habit.
        self.order: list[str] = []
        for name, value in items:
            lowered = str(name).lower()
            if lowered not in self._raw and lowered in _ORDERED:
                self.order.append(_ORDERED[lowered])
            self._raw.setdefault(lowered, []).append(value)
        self._decoded: dict[str, list[str]] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._raw

    def get(self, name: str) -> list[str]:
        if name not in self._decoded:
            self._decoded[name] = _decoded(self._raw.get(name, []))
        return self._decoded[name]


def _header_tokens(parsed: Message, tokens: _Tokens) -> None:
    message = _Headers(parsed)
    for subject in message.get("subject")[:1]:
        tokens.update(_subject_tokens(subject))
    from_addresses = _address_tokens(message, "from", tokens)
    reply_addresses = _address_tokens(message, "reply-to", tokens)
    if reply_addresses and from_addresses and not (reply_addresses & from_addresses):
        tokens.add("reply-to:differs")
    for name in ("x-mailer", "user-agent"):
        for value in message.get(name)[:1]:
            for word in _words(value.lower(), 2, 20):
                tokens.add(f"{name}:{word}")
    if not message.get("message-id"):
        tokens.add("header:no-message-id")
    else:
        message_id = message.get("message-id")[0]
        domain = message_id.rsplit("@", 1)[-1].strip(" <>").lower() if "@" in message_id else ""
        tokens.add("message-id:domain-shape:" + ("ip" if _IPV4.match(domain.strip("[]")) else
                                                 "host" if _HOSTLIKE.match(domain) else "odd"))
        if domain and from_addresses:
            tokens.add("message-id:from-domain:" + _same_domain(domain, from_addresses))
    if not message.get("date"):
        tokens.add("header:no-date")
    else:
        tokens.add(_date_skew(message.get("date")[0], message.get("received")[:1]))
    for name in ("content-type",):
        for value in message.get(name)[:1]:
            tokens.add(f"content-type:{value.split(';')[0].strip().lower()[:60]}")
    for name in ("content-transfer-encoding",):
        for value in message.get(name)[:1]:
            tokens.add(f"encoding:{value.strip().lower()[:30]}")
    if message.get("list-id") or message.get("list-unsubscribe"):
        tokens.add("header:list")
    for name in _FACT_HEADERS:
        if name in message:
            tokens.add(f"header:{name}")
    for name in _VALUE_HEADERS:
        for value in message.get(name)[:1]:
            tokens.add(f"header:{name}:{value.split('(')[0].strip().lower()[:20]}")
    tokens.add(f"header:recipients:{_recipients(message)}")
    if message.order:
        tokens.add("header:order:" + "".join(message.order))
    for index, received in enumerate(message.get("received")[-2:]):
        tokens.update(_received_tokens(received, index))


def _same_domain(message_id_domain: str, from_addresses: set[str]) -> str:
    """``same`` when the Message-Id's domain ends like a From address's domain (last two labels), else ``differs``.

    A mail program names the Message-Id after the host or domain it sends from, which is
    usually the sender's own; ratware makes one up, or takes it from a relay it abuses.
    """
    tail = ".".join(message_id_domain.strip("[]").split(".")[-2:])
    domains = {".".join(address.rpartition("@")[2].split(".")[-2:]) for address in from_addresses}
    return "same" if tail in domains else "differs"


def _date_skew(date: str, received: list[str]) -> str:
    """How far the sender's Date is from the arrival stamped by the first Received line.

    Not when the mail came (that is the collection's fact) but whether the sender's clock
    agrees with ours: ratware forges dates, days or years off, or in the future.
    """
    try:
        sent = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return "date:unreadable"
    if not received or ";" not in received[0]:
        return "date:no-arrival"
    try:
        arrived = email.utils.parsedate_to_datetime(received[0].rsplit(";", 1)[1].strip())
        if sent.tzinfo is None or arrived.tzinfo is None:
            sent, arrived = sent.replace(tzinfo=None), arrived.replace(tzinfo=None)
        hours = (arrived - sent).total_seconds() / 3600
    except (TypeError, ValueError, IndexError, OverflowError):
        return "date:no-arrival"
    if hours < -1:
        return "date:future"
    return "date:skew:" + ("hour" if hours < 1 else "day" if hours < 24 else "week" if hours < 168
                           else "year" if hours < 8760 else "years")


def _recipients(message: _Headers) -> str:
    """How many addresses To and Cc name: 0 to 5, "6-9", or "many" (bulk mail showing its list)."""
    values = message.get("to") + message.get("cc")
    try:
        count = len([address for _, address in email.utils.getaddresses(values) if address])
    except Exception:  # noqa: BLE001
        return "unparsed"
    return str(count) if count <= 5 else "6-9" if count < 10 else "many"


def _subject_tokens(subject: str) -> Iterator[str]:
    tag = _SUBJECT_TAG.match(subject)
    if tag:
        # The list's tag says which list carried it, and lists carry spam too: one fact, not the list's name.
        yield "subject:list-tag"
        subject = subject[: tag.end()].split("[", 1)[0] + subject[tag.end():]
    letters = [ch for ch in subject if ch.isalpha()]
    if len(letters) >= 8 and sum(ch.isupper() for ch in letters) > 0.7 * len(letters):
        yield "subject:shouting"
    if "!!" in subject or "$" in subject:
        yield "subject:" + ("!!" if "!!" in subject else "$")
    for word in _words(subject.lower(), 2, 20):
        yield f"subject:{word}"


def _address_tokens(message: _Headers, name: str, tokens: _Tokens) -> set[str]:
    """Tokens of an address header; returns the bare addresses found."""
    found: set[str] = set()
    for value in message.get(name)[:2]:
        try:
            pairs = email.utils.getaddresses([value])[:5]
        except Exception:  # noqa: BLE001
            pairs = []
        if not pairs:
            tokens.add(f"{name}:unparsed")
        for display, address in pairs:
            address = address.lower().strip()
            if "@" not in address:
                tokens.add(f"{name}:no-address")
                continue
            found.add(address)
            local, _, domain = address.rpartition("@")
            tokens.add(f"{name}:addr:{address[:80]}")
            tokens.add(f"{name}:domain:{domain[:60]}")
            labels = domain.split(".")
            if len(labels) >= 2:
                tokens.add(f"{name}:domain:*.{'.'.join(labels[-2:])}")
            if any(ch.isdigit() for ch in local) and sum(ch.isdigit() for ch in local) >= 3:
                tokens.add(f"{name}:local-digits")
            if not display:
                tokens.add(f"{name}:no-name")
            for word in _words(display.lower(), 2, 20):
                tokens.add(f"{name}:name:{word}")
    return found


def _received_tokens(received: str, index: int) -> Iterator[str]:
    """The sending relay of one of the first two hops: its domain (last two labels) and IP /16.

    Only the ``from`` clause counts (up to `` by ``): what the receiving
    server recorded about the sender, the reverse-DNS name and the IP address.
    """
    match = _RECEIVED_FROM.match(received)
    if not match:
        return
    clause = re.split(r"(?i)\sby\s", received, maxsplit=1)[0]
    helo = match.group(1).strip("[]()").lower()
    ip_match = _BRACKET_IP.search(clause)
    if ip_match:
        octets = ip_match.group(1).split(".")
        yield f"received:ip:{octets[0]}.{octets[1]}"
    host = ""
    for candidate in [*(match.group(2) or "").split(), helo]:
        candidate = candidate.strip("[]()").lower()
        if _HOSTLIKE.match(candidate) and not _IPV4.match(candidate):
            host = candidate
            break
    if host:
        yield "received:domain:" + ".".join(host.split(".")[-2:])
    elif helo and not _IPV4.match(helo):
        yield "received:helo-not-a-host"


# --------------------------------------------------------------------------- body


def _body_tokens(message: Message, tokens: _Tokens, config: SpamConfig, budget: _Budget) -> None:
    parts = 0
    for depth, part in walk_with_depth(message):
        parts += 1
        if parts > config.max_parts:
            tokens.add("mime:too-many-parts")
            return
        try:
            ctype = part.get_content_type().lower()
        except Exception:  # noqa: BLE001
            ctype = "text/plain"
        tokens.add(f"mime:{ctype[:60]}")
        if part.is_multipart():
            continue
        if depth > 0 or part is not message:
            for value in _header(part, "content-transfer-encoding")[:1]:
                tokens.add(f"encoding:{value.strip().lower()[:30]}")
        filename = _filename(part)
        if filename:
            stem, _, ext = filename.lower().rpartition(".")
            tokens.add(f"filename:ext:{ext[:10]}" if stem else "filename:no-ext")
            for word in _words(stem, 2, 20):
                tokens.add(f"filename:{word}")
            continue
        if ctype not in ("text/plain", "text/html") or budget.left <= 0:
            continue
        charset = _charset(part)
        if charset:
            tokens.add(f"charset:{charset[:30]}")
        text = budget.take(_part_text(part, charset, config.max_text_chars))
        tokens.update(_text_tokens(text, ctype, config, budget))


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        return None
    if not name:
        return None
    return decode_header_text(str(name))[:200]


def _charset(part: Message) -> str | None:
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        return None
    return charset.strip().strip('"').lower() if charset else None


def _part_text(part: Message, charset: str | None, limit: int) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    # Decode a little more than the limit in bytes: multi-byte charsets need up to 4 per character.
    return decode_text(payload[: limit * 4], charset)


def _text_tokens(text: str, ctype: str, config: SpamConfig, budget: _Budget) -> list[str]:
    found: list[str] = []
    if ctype == "text/html" or (ctype == "text/plain" and "<html" in text[:2000].lower()):
        text, facts = _strip_html(text)
        found += facts
    text, footers = _strip_list_footers(text)
    if footers:
        found.append("text:list-footer")
    if _MONEY.search(text):
        found.append("text:money")
    if "!!" in text:
        found.append("text:!!")
    sample = text[:5000]
    upper, lower = len(_UPPER.findall(sample)), len(_LOWER.findall(sample))
    if upper + lower > 100 and upper > 0.3 * (upper + lower):
        found.append("text:shouting")
    if "://" in text or "www." in text.lower():
        for url in _URL.finditer(text):
            found += _url_tokens(url.group(0))
        text = _URL.sub(" ", text)
    if "@" in text:
        found += ["email:domain:" + ".".join(match.group(1).lower().split(".")[-2:])
                  for match in _EMAIL.finditer(text)]
    found += _words(text.lower(), config.min_word_length, config.max_word_length, summarise=True)
    return found


def _strip_list_footers(text: str) -> tuple[str, int]:
    """The text without the footers mailing lists append, and how many there were (up to 3).

    A list adds the same footer to every message it carries, spam included: learnt as words,
    it makes spam sent through a list whose mail is mostly ham look like ham (and the reverse).
    A footer is a short block (at most 15 lines, in the last 2000 characters) after a separator
    line that names the list's subscription machinery (see ``_FOOTER_WORDS``); an ordinary
    signature after ``-- `` does not, and stays.
    """
    count = 0
    while count < 3:
        starts = list(_FOOTER_START.finditer(text, max(0, len(text) - 2000)))
        if not starts:
            break
        block = text[starts[-1].end():]
        if block.count("\n") > 15 or not _FOOTER_WORDS.search(block):
            break
        text = text[: starts[-1].start()]
        count += 1
    return text, count


def _strip_html(text: str) -> tuple[str, list[str]]:
    """The visible text of HTML, and facts about its markup (tags used, hidden text, URLs)."""
    facts: list[str] = []
    if _COMMENT.search(text):
        facts.append("html:comment")
        text = _COMMENT.sub("", text)
    if _SCRIPT_STYLE.search(text):
        text = _SCRIPT_STYLE.sub(" ", text)
    seen: set[str] = set()
    # One pass over the tags gives both the facts and the visible text (what _TAG.sub(" ", text) gives);
    # the hidden-text pattern is looked for in each tag only if the whole text has it somewhere.
    hidden = _HIDDEN.search(text) is not None
    visible: list[str] = []
    last = 0
    for match in _TAG.finditer(text):
        visible.append(text[last:match.start()])
        visible.append(" ")
        last = match.end()
        name = match.group(2).lower()
        attrs = match.group(3)
        if name in _NOTED_TAGS and name not in seen:
            seen.add(name)
            facts.append(f"html:{name}")
        if hidden and attrs and _HIDDEN.search(attrs):
            facts.append("html:hidden-text")
        if attrs and "=" in attrs:  # white fonts and URLs are attribute values
            if name == "font":
                lowered = attrs.lower()
                if ("color=\"#ffffff\"" in lowered or "color=white" in lowered or
                        "color=\"white\"" in lowered or "color=#ffffff" in lowered):
                    facts.append("html:white-font")
            for url in _ATTR_URL.finditer(attrs):
                value = html.unescape(url.group(1))
                if value.lower().startswith(("http:", "https:", "ftp:", "www.")):
                    facts.extend(_url_tokens(value))
                elif value.lower().startswith("mailto:"):
                    facts.append("url:mailto")
    visible.append(text[last:])
    return html.unescape("".join(visible)), facts


def _url_tokens(url: str) -> Iterator[str]:
    url = url.rstrip(".,;:!?)]}'\"")
    lowered = url.lower()
    scheme, sep, rest = lowered.partition("://")
    if not sep:
        scheme, rest = "http", lowered
    yield f"url:scheme:{scheme[:10]}"
    authority, _, path = rest.partition("/")
    if "@" in authority:
        yield "url:userinfo"
        authority = authority.rsplit("@", 1)[1]
    host, _, port = authority.partition(":")
    if port and port not in ("80", "443"):
        yield "url:port"
    if _IPV4.match(host):
        yield "url:ip-host"
    elif host:
        labels = [label for label in host.split(".") if label][:10]
        for label_ in labels:
            if label_ not in ("www", "com", "net", "org"):
                yield f"url:host:{label_[:30]}"
        if len(labels) >= 2:
            yield "url:domain:" + ".".join(labels[-2:])
        if "%" in host or "xn--" in host:
            yield "url:odd-host"
    if "%" in path:
        yield "url:escaped-path"
    for word in re.split(r"[^a-z0-9]+", path)[:20]:
        if 2 < len(word) <= 20:
            yield f"url:path:{word}"


def _words(text: str, shortest: int, longest: int, summarise: bool = False) -> list[str]:
    """Words of ``text`` (already lower-cased): stripped of punctuation, length-bounded."""
    stripped = [raw.strip(_WORD_STRIP) for raw in text.split()]
    words = [word for word in stripped if shortest <= len(word) <= longest]
    if summarise:
        words += [f"skip:{word[0]} {len(word) // 10 * 10}" for word in stripped if len(word) > longest]
    return words
