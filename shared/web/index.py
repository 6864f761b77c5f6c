"""The mail index: what the message list and search read, kept in SQLite next to the Maildirs.

Listing 10,000 messages newest first, or finding the ones whose body holds a word, cannot mean
parsing 10,000 files per request. So each message is parsed once, when first seen, into a row
(``run/web-index.sqlite``, mode 0600: it holds the text of every message) and an FTS5 row of its
from, to, subject and body text (at most :data:`BODY_LIMIT` characters). Keeping it current is
incremental: a refresh (on every list or search request, and every half second from the events
poller) lists each Maildir's ``new/`` and ``cur/`` with ``os.scandir``, parses only the files it has
no row for, updates the file name of a message that moved from ``new/`` to ``cur/`` (its key, the
name before ``:2,``, stays the same), and drops the rows of files that are gone. A folder whose
``new/`` and ``cur/`` have not changed since the last scan (directory mtimes, trusted only once
they are a few seconds old) is not listed again.

The first indexing of a large Maildir takes a while (6–8 s for 10,000 messages on a 2-core
VM). It never holds up the page: one thread indexes at a time, in committed batches, with the
database free between them; a request waits for it at most :data:`REQUEST_BUDGET` seconds, indexes
for at most that long itself, and answers from what is indexed so far, saying how many messages
are still to come (:meth:`Index.pending`). The events poller finishes the job in the background.

The index is a cache: it can be deleted at any time and is rebuilt from the Maildirs; a schema
change rebuilds it too (``PRAGMA user_version``).
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from lamson import maildir
from lamson.web import message as mime
from lamson.web.mailboxes import Mailbox

log = logging.getLogger("lamson.web")

SCHEMA_VERSION = 3
INDEX_FILE = "web-index.sqlite"
#: Characters of body text indexed for search per message.
BODY_LIMIT = 64 * 1024
#: Bytes of a file parsed when indexing it (headers, structure, the first text part).
INDEX_PARSE_LIMIT = 2 * 1024 * 1024
SNIPPET = 160
#: A folder whose mtime is younger than this is listed again even if it did not change (mtime granularity).
SETTLE_SECONDS = 2.0
#: Most messages a thread gathers.
MAX_THREAD = 200
#: Messages parsed and committed in one transaction while indexing (the database is free between two).
BATCH = 200
#: Seconds a request's refresh waits for another thread's and indexes itself (the rest in the background).
REQUEST_BUDGET = 0.3

_SCHEMA = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox TEXT NOT NULL, key TEXT NOT NULL, fname TEXT NOT NULL, sub TEXT NOT NULL,
    size INTEGER NOT NULL, timestamp REAL NOT NULL, date TEXT NOT NULL,
    sender TEXT NOT NULL, recipients TEXT NOT NULL, cc TEXT NOT NULL, subject TEXT NOT NULL,
    snippet TEXT NOT NULL, message_id TEXT NOT NULL, in_reply_to TEXT NOT NULL,
    has_html INTEGER NOT NULL, attachments INTEGER NOT NULL, reason TEXT,
    UNIQUE (mailbox, key)
);
CREATE INDEX messages_time ON messages (timestamp DESC, id DESC);
CREATE INDEX messages_box_time ON messages (mailbox, timestamp DESC, id DESC);
CREATE INDEX messages_mid ON messages (message_id);
CREATE TABLE refs (msg INTEGER NOT NULL, ref TEXT NOT NULL);
CREATE INDEX refs_ref ON refs (ref);
CREATE INDEX refs_msg ON refs (msg);
CREATE VIRTUAL TABLE fts USING fts5 (sender, recipients, subject, body, prefix = '2 3',
                                     tokenize = 'unicode61 remove_diacritics 2');
"""

_COLUMNS = ("id, mailbox, key, fname, sub, size, timestamp, date, sender, recipients, cc, subject, snippet, "
            "message_id, in_reply_to, has_html, attachments, reason")

#: Search prefixes and the FTS5 column each restricts a word to.
FIELDS = {"from": "sender", "to": "recipients", "subject": "subject", "body": "body"}


class BadQuery(ValueError):
    """A cursor or search the index cannot use (the API answers 400)."""


@dataclass(frozen=True)
class Row:
    """One indexed message."""

    id: int
    mailbox: str
    key: str
    fname: str
    sub: str
    size: int
    timestamp: float
    date: str
    sender: str
    recipients: str
    cc: str
    subject: str
    snippet: str
    message_id: str
    in_reply_to: str
    has_html: bool
    attachments: int
    reason: str | None

    def summary(self, from_app: bool) -> dict[str, Any]:
        """The API's Summary object (docs/web.md)."""
        return {"id": f"{self.mailbox}/{self.key}", "mailbox": self.mailbox, "key": self.key, "date": self.date,
                "timestamp": self.timestamp, "from": self.sender, "to": self.recipients, "subject": self.subject,
                "snippet": self.snippet, "size": self.size, "message_id": self.message_id,
                "in_reply_to": self.in_reply_to, "has_html": self.has_html, "attachments": self.attachments,
                "from_app": from_app, "reason": self.reason}

    def cursor(self) -> str:
        """Where the page after this row starts (opaque to clients)."""
        return f"{self.timestamp!r}_{self.id}"


def _row(values: Sequence[Any]) -> Row:
    v = list(values)
    v[15] = bool(v[15])
    return Row(*v)


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    total: int
    next: str | None
    took_ms: float


def key_of(fname: str) -> str:
    """A Maildir file name's key: the name without its ``:2,FLAGS`` info (lamson.maildir.locate's notion)."""
    return fname.split(":2,", 1)[0]


def arrival(fname: str, mtime: float) -> float:
    """When the message arrived: the time in its key (``SECONDS.M<usec>...``), else the file's mtime."""
    sec, usec, _, _ = maildir.key_order(fname)
    return sec + usec / 1_000_000 if sec > 0 else mtime


def fts_query(text: str) -> str | None:
    """An FTS5 query for the search box's ``text``: every word must match (as a prefix).

    ``from:x``, ``to:x``, ``subject:x`` (and ``body:x``) restrict the word to that field; ``"two
    words"`` is a phrase. Each word is quoted, so nothing a user types is FTS5 syntax. None when
    the text holds no word at all.
    """
    terms: list[str] = []
    for match in re.finditer(r'(?:(\w+):)?(?:"([^"]*)"|(\S+))', text):
        field, phrase, word = match.group(1), match.group(2), match.group(3)
        column = FIELDS.get(field.lower()) if field else None
        if field and column is None:  # "http://x" or "re:" is a word, not a field
            word = f"{field}:{phrase if phrase is not None else word}"
        value = phrase if phrase is not None else word
        if not value or not re.search(r"\w", value):
            continue
        term = '"' + value.replace('"', '""') + '"*'
        terms.append(f"{column} : {term}" if column else term)
    return " AND ".join(terms) if terms else None


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def header_date(value: str, fallback: float) -> str:
    """The Date header as ISO-8601, or the arrival time's when it is missing or unreadable."""
    if value:
        try:
            parsed = parsedate_to_datetime(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.isoformat(timespec="seconds")
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return iso(fallback)


@dataclass
class Parsed:
    """What indexing one file found."""

    fields: dict[str, Any]
    body: str
    refs: list[str]


def parse_file(path: Path, fname: str, size: int, mtime: float) -> Parsed | None:
    """One message file read into index fields (None when it vanished or cannot be read)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(INDEX_PARSE_LIMIT)
    except OSError:
        return None
    return parse_bytes(data, fname, size, mtime)


def parse_bytes(data: bytes, fname: str, size: int, mtime: float) -> Parsed:
    """Index fields of a message's bytes: bounded work whatever the bytes are (lamson.web.message)."""
    reason: str | None = None
    if data[:9].lower() == b"x-lamson-":
        from lamson.parked import NotParked, read

        try:
            reason = read(data).reason or None
        except NotParked:
            reason = None
    msg = mime.parse(data)
    ts = arrival(fname, mtime)
    found = mime.survey(msg)
    if found.plain is not None:
        body = mime.part_text(found.plain, BODY_LIMIT)
    elif found.rich is not None:
        body = mime.quick_html_text(mime.part_text(found.rich, BODY_LIMIT * 2), BODY_LIMIT)
    else:
        body = ""
    heads = mime.first_headers(msg)

    def head(name: str) -> str:
        return mime.header_text(heads.get(name))

    snippet = " ".join(body[: SNIPPET * 4].split())[:SNIPPET]
    mid = (mime.message_ids(head("message-id")) or [""])[0]
    reply = (mime.message_ids(head("in-reply-to")) or [""])[0]
    refs = mime.message_ids(head("references"))
    if reply and reply not in refs:
        refs.append(reply)
    fields = {"size": size, "timestamp": ts, "date": header_date(head("date"), ts), "sender": head("from"),
              "recipients": head("to"), "cc": head("cc"), "subject": head("subject"), "snippet": snippet,
              "message_id": mid, "in_reply_to": reply, "has_html": int(found.rich is not None),
              "attachments": found.attachments, "reason": reason}
    return Parsed(fields, body, refs)


class Index:
    """The SQLite index of a project's mailboxes; thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: The SQLite connection's lock: held for one statement or one batch's transaction.
        self._lock = threading.Lock()
        #: One refresh at a time (the scan state below is the refresher's); not held while querying.
        self._refreshing = threading.Lock()
        #: Per mailbox, the files found by the last scan and not indexed yet.
        self._pending: dict[str, int] = {}
        #: Set by :meth:`close`: a refresh still running in a worker thread stops at its next batch.
        self._closed = False
        self._stamps: dict[str, tuple[int, int]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()
        #: The mailboxes the index has rows of (a mailbox no longer found loses its rows).
        self._known = {r[0] for r in self._db.execute("SELECT DISTINCT mailbox FROM messages")}
        #: Per mailbox, what its rows say of its files (key -> id, file name, subfolder): the rows,
        #: kept in memory so that a scan compares listings instead of reading 10,000 rows again.
        self._files: dict[str, dict[str, tuple[int, str, str]]] = {}

    def _connect(self) -> sqlite3.Connection:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # created private before SQLite opens it
        os.close(fd)
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last commits costs a re-scan
        return db

    def _open(self) -> sqlite3.Connection:
        """The index, rebuilt from nothing when it is of another schema or not a database any more."""
        db: sqlite3.Connection | None = None
        try:
            db = self._connect()
            current = db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            if current:
                db.execute("SELECT count(*) FROM messages").fetchone()
        except sqlite3.DatabaseError as exc:
            log.warning("lamson web: rebuilding the mail index %s (%s)", self.path, exc)
            current = False
        if db is None or not current:
            if db is not None:
                db.close()
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(f"{self.path}{suffix}")
                except FileNotFoundError:
                    pass
            db = self._connect()
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        for suffix in ("", "-wal", "-shm"):
            try:
                os.chmod(f"{self.path}{suffix}", 0o600)
            except FileNotFoundError:
                pass
        return db

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    # --- keeping it current ---------------------------------------------------------------------

    def refresh(self, mailboxes: Iterable[Mailbox], budget: float | None = None) -> int:
        """Bring the index in line with the Maildirs; return how many messages were added.

        ``budget`` (seconds; a request's refresh): wait at most that long for a refresh under way
        in another thread, and index for at most about that long; what is left waits for the next
        refresh (:meth:`pending` says how much). None: wait, and index everything.
        """
        boxes = list(mailboxes)
        deadline = None if budget is None else time.monotonic() + budget
        if not self._refreshing.acquire(timeout=-1 if budget is None else budget):
            return 0  # another thread is indexing: the caller reads what it has committed so far
        added = 0
        try:
            names = {m.name for m in boxes}
            for name in sorted(self._known - names):
                self._drop_mailbox(name)
            self._known = names
            for mailbox in boxes:
                # Past the deadline, only the first batch of the whole refresh is indexed (progress without the poller).
                added += self._refresh_one(mailbox, deadline, first_batch_free=not added)
        finally:
            self._refreshing.release()
        return added

    def pending(self) -> int:
        """Messages the last scan found and the index does not hold yet (0 once it has caught up)."""
        return sum(self._pending.copy().values())  # a copy: the refresher may add a mailbox meanwhile

    def _drop_mailbox(self, name: str) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            ids = [r[0] for r in self._db.execute("SELECT id FROM messages WHERE mailbox = ?", (name,))]
            self._delete(ids)
            self._db.execute("COMMIT")
        self._stamps.pop(name, None)
        self._files.pop(name, None)
        self._pending.pop(name, None)

    def _stamp(self, mailbox: Mailbox) -> tuple[int, int] | None:
        try:
            return (os.stat(mailbox.path / "new").st_mtime_ns, os.stat(mailbox.path / "cur").st_mtime_ns)
        except OSError:
            return None

    def _refresh_one(self, mailbox: Mailbox, deadline: float | None = None, first_batch_free: bool = True) -> int:
        stamp = self._stamp(mailbox)
        if stamp is not None and self._stamps.get(mailbox.name) == stamp \
                and time.time() - max(stamp) / 1e9 > SETTLE_SECONDS:
            return 0
        files: dict[str, tuple[str, str]] = {}
        if stamp is not None:
            for sub in ("new", "cur"):
                try:
                    with os.scandir(mailbox.path / sub) as entries:
                        for entry in entries:
                            try:
                                if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                                    files[key_of(entry.name)] = (sub, entry.name)
                            except OSError:
                                continue
                except OSError:
                    continue
        known = self._files.get(mailbox.name)
        if known is None:
            with self._lock:
                known = {r[0]: (r[1], r[2], r[3]) for r in self._db.execute(
                    "SELECT key, id, fname, sub FROM messages WHERE mailbox = ?", (mailbox.name,))}
            self._files[mailbox.name] = known
        gone = [key for key in known if key not in files]
        moved = [key for key, row in known.items() if key in files and (files[key][1], files[key][0]) != row[1:]]
        new: list[tuple[str, tuple[str, str, int, float]]] = []
        for key, (sub, fname) in files.items():
            if key in known:
                continue
            try:
                st = os.stat(mailbox.path / sub / fname, follow_symlinks=False)
            except OSError:
                continue  # moved or removed since the listing: the next refresh sees where it went
            new.append((key, (sub, fname, st.st_size, st.st_mtime)))
        added = 0
        if gone or moved:
            with self._lock:
                self._db.execute("BEGIN")
                self._delete([known[key][0] for key in gone])
                self._db.executemany("UPDATE messages SET fname = ?, sub = ? WHERE id = ?",
                                     [(files[key][1], files[key][0], known[key][0]) for key in moved])
                self._db.execute("COMMIT")
            for key in gone:
                del known[key]
            for key in moved:
                known[key] = (known[key][0], files[key][1], files[key][0])
        # Newest first: a first indexing cut short by a request's budget has the latest mail listed.
        new.sort(key=lambda item: arrival(item[1][1], item[1][3]), reverse=True)
        self._pending[mailbox.name] = len(new)
        for start in range(0, len(new), BATCH):
            if deadline is not None and (start or not first_batch_free) and time.monotonic() > deadline:
                return added  # the rest next time; the folder's stamp is not recorded, so it is listed again
            batch = []
            for key, (sub, fname, size, mtime) in new[start:start + BATCH]:
                parsed = parse_file(mailbox.path / sub / fname, fname, size, mtime)
                if parsed is not None:
                    batch.append((key, sub, fname, parsed))
            with self._lock:
                if self._closed:
                    return added
                self._db.execute("BEGIN")
                for key, sub, fname, parsed in batch:
                    f = parsed.fields
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO messages (mailbox, key, fname, sub, size, timestamp, date, sender, "
                        "recipients, cc, subject, snippet, message_id, in_reply_to, has_html, attachments, reason) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (mailbox.name, key, fname, sub, f["size"], f["timestamp"], f["date"], f["sender"],
                         f["recipients"], f["cc"], f["subject"], f["snippet"], f["message_id"], f["in_reply_to"],
                         f["has_html"], f["attachments"], f["reason"]))
                    if not cur.rowcount:  # another web process on the same project indexed it first
                        other = self._db.execute("SELECT id, fname, sub FROM messages WHERE mailbox = ? AND key = ?",
                                                 (mailbox.name, key)).fetchone()
                        if other is not None:
                            known[key] = (int(other[0]), str(other[1]), str(other[2]))
                        continue
                    rowid = int(cur.lastrowid or 0)
                    known[key] = (rowid, fname, sub)
                    self._db.execute("INSERT INTO fts (rowid, sender, recipients, subject, body) VALUES (?, ?, ?, ?, ?)",
                                     (rowid, f["sender"], " ".join(filter(None, (f["recipients"], f["cc"]))),
                                      f["subject"], parsed.body))
                    self._db.executemany("INSERT INTO refs (msg, ref) VALUES (?, ?)", [(rowid, r) for r in parsed.refs])
                    added += 1
                self._db.execute("COMMIT")
            self._pending[mailbox.name] = max(0, len(new) - start - BATCH)
        if stamp is not None:
            self._stamps[mailbox.name] = stamp
        else:
            self._stamps.pop(mailbox.name, None)
        self._pending[mailbox.name] = 0
        return added

    def _delete(self, ids: list[int]) -> None:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            self._db.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)
            self._db.execute(f"DELETE FROM fts WHERE rowid IN ({marks})", chunk)
            self._db.execute(f"DELETE FROM refs WHERE msg IN ({marks})", chunk)

    # --- reading --------------------------------------------------------------------------------

    def query(self, mailboxes: Sequence[str] | None, q: str = "", limit: int = 50, before: str | None = None) -> Page:
        """A page of messages, newest first: in ``mailboxes`` (None: all), matching ``q``, older than ``before``."""
        started = time.perf_counter()
        where: list[str] = []
        args: list[Any] = []
        if mailboxes is not None:
            if not mailboxes:
                return Page([], 0, None, 0.0)
            where.append(f"mailbox IN ({','.join('?' * len(mailboxes))})")
            args += list(mailboxes)
        match = fts_query(q) if q.strip() else None
        if match is not None:
            where.append("id IN (SELECT rowid FROM fts WHERE fts MATCH ?)")
            args.append(match)
        count_where = " AND ".join(where) or "1"
        page_where = list(where)
        page_args = list(args)
        if before:
            ts, sep, rowid = before.rpartition("_")
            try:
                cursor_ts, cursor_id = float(ts), int(rowid)
            except ValueError:
                raise BadQuery(f"not a cursor: {before!r}") from None
            if not sep:
                raise BadQuery(f"not a cursor: {before!r}")
            page_where.append("(timestamp < ? OR (timestamp = ? AND id < ?))")
            page_args += [cursor_ts, cursor_ts, cursor_id]
        with self._lock:
            try:
                total = self._db.execute(f"SELECT count(*) FROM messages WHERE {count_where}", args).fetchone()[0]
                found = [_row(r) for r in self._db.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE {' AND '.join(page_where) or '1'} "
                    f"ORDER BY timestamp DESC, id DESC LIMIT ?", [*page_args, limit + 1])]
            except sqlite3.OperationalError as exc:  # an FTS5 query it still cannot parse
                raise BadQuery(f"cannot search for {q!r}: {exc}") from None
        more = len(found) > limit
        rows = found[:limit]
        return Page(rows, total, rows[-1].cursor() if more and rows else None,
                    round((time.perf_counter() - started) * 1000, 3))

    def get(self, mailbox: str, key: str) -> Row | None:
        with self._lock:
            found = self._db.execute(f"SELECT {_COLUMNS} FROM messages WHERE mailbox = ? AND key = ?",
                                     (mailbox, key)).fetchone()
        return _row(found) if found else None

    def count(self, mailbox: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM messages WHERE mailbox = ?", (mailbox,)).fetchone()[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {r[0]: int(r[1]) for r in self._db.execute("SELECT mailbox, count(*) FROM messages GROUP BY mailbox")}

    def since(self, last_id: int) -> list[Row]:
        """Rows added after ``last_id`` (ids only grow: AUTOINCREMENT), oldest first."""
        with self._lock:
            return [_row(r) for r in self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT 1000", (last_id,))]

    def last_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0])

    def thread(self, row: Row) -> list[Row]:
        """The messages linked to ``row`` by Message-ID / In-Reply-To / References, in both directions,
        across every mailbox, ``row`` included, oldest first (at most :data:`MAX_THREAD`)."""
        with self._lock:
            members = {row.id}
            frontier = {row.id}
            seen_ids: set[str] = set()
            while frontier and len(members) < MAX_THREAD:
                marks = ",".join("?" * len(frontier))
                ids = {r[0] for r in self._db.execute(
                    f"SELECT message_id FROM messages WHERE id IN ({marks}) AND message_id != ''", list(frontier))}
                ids |= {r[0] for r in self._db.execute(f"SELECT ref FROM refs WHERE msg IN ({marks})", list(frontier))}
                ids -= seen_ids
                seen_ids |= ids
                if not ids:
                    break
                id_marks = ",".join("?" * len(ids))
                linked = {r[0] for r in self._db.execute(
                    f"SELECT id FROM messages WHERE message_id IN ({id_marks}) "
                    f"UNION SELECT msg FROM refs WHERE ref IN ({id_marks}) LIMIT {MAX_THREAD}", [*ids, *ids])}
                frontier = linked - members
                members |= frontier
            marks = ",".join("?" * len(members))
            rows = [_row(r) for r in self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE id IN ({marks}) ORDER BY timestamp, id LIMIT {MAX_THREAD}",
                list(members))]
        return rows


def index_path(run_dir: Path) -> Path:
    return run_dir / INDEX_FILE
