"""The Maildirs ``lamson web`` shows, found from the settings and the project's ``run/`` folder.

Named ones first: the logging server's ``queue_dir`` (``run/queue``: what the application sent, in
development), ``run/web-sent`` (what the developer sent from the browser), ``undeliverable_dir`` and
``bounced_dir`` (parked mail). Then every other Maildir under ``run/`` (``lamson.queue.Queue``
folders, a spam folder), named by its path relative to ``run/``. The spool and the outbox are
Maildirs too, but of the pipeline's own records, shown by the pipeline page, not here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from lamson.web.context import WebContext

#: The Maildir under ``run_dir`` where the browser's messages are copied (lamson.web.compose).
SENT_DIR = "web-sent"
#: How deep under ``run/`` Maildirs are looked for, and how long a discovery is reused (seconds).
MAX_DEPTH = 3
CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Mailbox:
    """One Maildir the pages list: its API name, a title for people, its folder and its kind."""

    name: str
    title: str
    path: Path
    #: "log" (what the application sent), "sent", "parked", "bounced", "spam" or "queue".
    kind: str

    @property
    def from_app(self) -> bool:
        """Its messages were written by the application (a Reply button answers them)."""
        return self.kind == "log"


def is_maildir(path: Path) -> bool:
    """A real folder (no symlink) holding ``new/`` and ``cur/``."""
    try:
        return (not path.is_symlink() and path.is_dir() and (path / "new").is_dir() and (path / "cur").is_dir()
                and not (path / "new").is_symlink() and not (path / "cur").is_symlink())
    except OSError:
        return False


def discover(ctx: WebContext, *, fresh: bool = False) -> list[Mailbox]:
    """Every mailbox of the application, named ones first (they are listed even before they exist).

    ``fresh``: look again now (a list request, the poller); otherwise a discovery younger than
    :data:`CACHE_SECONDS` is reused (per-message lookups of a mailbox by name).
    """
    cached = ctx.services.get("mailboxes")
    if not fresh and cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        found: list[Mailbox] = cached[1]
        return found
    settings = ctx.settings
    run = ctx.path(settings.run_dir).resolve()
    named = [
        Mailbox("queue", "Replies (logging server)", ctx.path(settings.queue_dir).resolve(), "log"),
        Mailbox("sent", "Sent from this page", run / SENT_DIR, "sent"),
        Mailbox("undeliverable", "Parked (undeliverable)", ctx.path(settings.undeliverable_dir).resolve(), "parked"),
        Mailbox("bounced", "Bounced and held back", ctx.path(settings.bounced_dir).resolve(), "bounced"),
    ]
    taken = {m.path for m in named}
    skipped = {ctx.path(settings.spool_dir).resolve(), ctx.path(settings.outbox_dir).resolve()}
    others: list[Mailbox] = []
    for path in _maildirs_under(run, MAX_DEPTH, skipped):
        if path in taken:
            continue
        name = path.relative_to(run).as_posix()
        kind = "spam" if "spam" in name.lower() else "queue"
        title = f"Spam ({name})" if kind == "spam" else f"Queue {name}"
        others.append(Mailbox(name, title, path, kind))
    mailboxes = named + sorted(others, key=lambda m: m.name)
    ctx.services["mailboxes"] = (time.monotonic(), mailboxes)
    return mailboxes


def _maildirs_under(top: Path, depth: int, skipped: set[Path]) -> list[Path]:
    """Maildirs below ``top`` (not ``top`` itself), at most ``depth`` levels down, symlinks not followed,
    the ``skipped`` folders not entered."""
    found: list[Path] = []
    if depth <= 0:
        return found
    try:
        entries = [e for e in os.scandir(top) if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    except OSError:
        return found
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.name in ("new", "cur", "tmp"):
            continue
        path = Path(entry.path)
        if path in skipped:
            continue
        if is_maildir(path):
            found.append(path)
        found.extend(_maildirs_under(path, depth - 1, skipped))
    return found


def by_name(ctx: WebContext, name: str) -> Mailbox | None:
    """The mailbox called ``name``, or None."""
    for mailbox in discover(ctx):
        if mailbox.name == name:
            return mailbox
    return None
