"""Names of blogs and posts: what an address may contain, and paths that never leave their folder.

A post name comes from the local part of the address it was mailed to, and a
blog name from the sender's address; both end up as file names. They are
checked twice: the route regexes below only match safe names, and every path
is built by :func:`inside`, which refuses anything that would land outside its
folder (``..``, ``/``, a symlink pointing out), whatever the caller passed.
"""

from __future__ import annotations

import re
from pathlib import Path

#: A post name: lowercase words of letters and digits joined by single hyphens.
#: Reserved so that the addresses stay unambiguous: a name cannot start with
#: ``comment-`` (comment addresses), hold a ``-confirm-`` word
#: (``post-confirm-SECRET``) or end in ``-delete`` (delete addresses).
POST_NAME = r"(?!comment-)[a-z0-9]+(?:-(?!confirm-)[a-z0-9]+)*(?<!-delete)"

#: A blog name: at least two words of letters and digits joined by dots (what
#: :func:`blog_slug` makes of an address), nothing that could mean a path.
BLOG_NAME = r"[a-z0-9]+(?:\.[a-z0-9]+)+"

#: The longest post or blog name (file names and URLs stay short).
MAX_NAME = 64

_POST = re.compile(POST_NAME)
_BLOG = re.compile(BLOG_NAME)
_NOT_WORD = re.compile(r"[^a-z0-9]+")


class BadName(ValueError):
    """A post or blog name that is not allowed (the reply tells the sender why)."""


def post_name(name: str) -> str:
    """``name`` lowercased if it is a valid post name, else :class:`BadName`."""
    name = (name or "").lower()
    if len(name) > MAX_NAME or not _POST.fullmatch(name):
        raise BadName(f"{name[:80]!r} is not a post name: use at most {MAX_NAME} letters, digits and hyphens")
    return name


def blog_name(name: str) -> str:
    """``name`` lowercased if it is a valid blog name, else :class:`BadName`."""
    name = (name or "").lower()
    if len(name) > MAX_NAME or not _BLOG.fullmatch(name):
        raise BadName(f"{name[:80]!r} is not a blog name")
    return name


def blog_slug(address: str) -> str:
    """The blog name an address asks for: ``Mary-Jane@Example.org`` → ``mary.jane.example.org``.

    Every run of other characters becomes one dot, so the result is always a
    valid :data:`BLOG_NAME`. Two addresses can ask for the same slug
    (``a.b@c.d`` and ``a@b.c.d``): the store gives the second one a numbered
    name, so a blog always belongs to one address.
    """
    local, _, domain = (address or "").lower().rpartition("@")
    parts = [_NOT_WORD.sub(".", part).strip(".") for part in (local, domain)]
    slug = ".".join(part for part in parts if part)[:MAX_NAME - 10].strip(".")
    return slug if "." in slug else (slug or "unnamed") + ".blog"


def inside(root: Path, *parts: str) -> Path:
    """``root/part/...``, refused with :class:`BadName` if it would resolve outside ``root``.

    The names are already checked; this is the last line of defence for a
    caller that forgot, and for links an attacker could not create anyway.
    """
    base = root.resolve()
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\\" in part or "\x00" in part:
            raise BadName(f"{part!r} cannot be part of a path")
    path = base.joinpath(*parts).resolve()
    if path != base and base not in path.parents:
        raise BadName(f"{'/'.join(parts)!r} is outside {base}")
    return path
