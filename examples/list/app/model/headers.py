"""The list's headers (RFC 2369, RFC 2919) and the copy of a post that members receive.

A post is passed on as it came, byte for byte below its header block, so a
body or attachments are never re-encoded and a DKIM signature over them stays
valid. Only the header block changes: list headers the post carried (from its
author, or from another list it passed through) are removed, and ours go on top.

No ``List-Unsubscribe-Post`` (RFC 8058): it may only accompany an HTTPS
``List-Unsubscribe`` URL that unsubscribes on one POST, and this example has
no web endpoint (see the README). ``List-Archive`` is sent only when
``list_archive_url`` names where a web server publishes run/archive/LIST.
"""

from __future__ import annotations

import re
from email.utils import formataddr

from lamson.encoding import header_block_end

#: Headers a post loses before ours are added: the list headers of RFC 2369/2919/8058, and the
#: markers this list sets itself (Precedence, our X-Loop is added again, never doubled).
REPLACED = (
    "list-id", "list-post", "list-help", "list-unsubscribe", "list-unsubscribe-post", "list-subscribe",
    "list-archive", "list-owner", "precedence", "return-path", "errors-to",
)


def list_id(name: str, host: str) -> str:
    """The RFC 2919 list identifier: ``NAME.HOST`` (globally unique because the host is ours)."""
    return f"{name}.{host}"


def list_headers(name: str, host: str, description: str, archive_url: str | None = None) -> list[tuple[str, str]]:
    """The headers every message of list ``name`` carries, in order."""
    headers = [
        ("List-Id", formataddr((description, list_id(name, host))) if description else f"<{list_id(name, host)}>"),
        ("List-Post", f"<mailto:{name}@{host}>"),
        ("List-Help", f"<mailto:{name}-help@{host}>"),
        ("List-Subscribe", f"<mailto:{name}-subscribe@{host}>"),
        ("List-Unsubscribe", f"<mailto:{name}-unsubscribe@{host}>"),
    ]
    if archive_url:
        headers.append(("List-Archive", f"<{archive_url.format(list=name, host=host)}>"))
    headers.append(("Precedence", "list"))
    headers.append(("X-Loop", f"{name}@{host}"))
    return headers


def _field_name(line: bytes) -> bytes:
    return line.split(b":", 1)[0].strip().lower()


def without_headers(head: bytes, names: tuple[str, ...]) -> bytes:
    """The header block ``head`` without the fields named (and their continuation lines)."""
    wanted = {n.encode("ascii") for n in names}
    kept: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = _field_name(line) in wanted
        if not dropping:
            kept.append(line)
    return b"".join(kept)


def list_copy(data: bytes, headers: list[tuple[str, str]]) -> bytes:
    """The post ``data`` as members receive it: its old list headers out, ``headers`` on top.

    Our headers are ASCII by construction except a non-ASCII description,
    which is RFC 2047-encoded by ``formataddr``; values never hold a line break.
    """
    end = header_block_end(data)
    head, rest = (data, b"") if end is None else (data[:end], data[end:])
    if end is not None:  # the last header's line break belongs to the head, the blank line to the rest
        cut = 2 if rest.startswith(b"\r\n") else 1
        head, rest = head + rest[:cut], rest[cut:]
    eol = b"\r\n" if b"\r\n" in data[:4096] else b"\n"
    for _, value in headers:
        if re.search(r"[\r\n]", value):
            raise ValueError(f"a header value with a line break: {value!r}")
    top = b"".join(f"{field}: {value}".encode() + eol for field, value in headers)
    return top + without_headers(head, REPLACED) + rest
