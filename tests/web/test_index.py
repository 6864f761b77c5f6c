"""The mail index of ``lamson web`` (lamson.web.index): what the list and search read.

Behaviour, not speed (bench/web.py measures 10,000 messages over HTTP): a few hundred real files in
real Maildirs, indexed incrementally, newest first, paged by cursor, searched by word and by field,
kept right when a message moves from new/ to cur/ or is deleted, and safe on hostile mail.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from lamson import maildir
from lamson.web.index import BATCH, BadQuery, Index, fts_query
from lamson.web.mailboxes import Mailbox

WORDS = ["apple", "banana", "cherry", "damson", "elder"]


def make(i: int, *, sender: str | None = None, subject: str | None = None, body: str | None = None,
         mid: str | None = None, reply_to_id: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender or f"user{i % 7}@example.org"
    msg["To"] = "hello@test.com"
    msg["Subject"] = subject or f"message {i} about {WORDS[i % len(WORDS)]}"
    msg["Message-ID"] = mid or f"<m{i}@example.org>"
    if reply_to_id:
        msg["In-Reply-To"] = reply_to_id
        msg["References"] = reply_to_id
    msg.set_content(body or f"Body of message {i}. The fruit is {WORDS[(i + 2) % len(WORDS)]}.\n")
    return msg.as_bytes()


def key_at(seconds: int, n: int) -> str:
    """A Lamson-style key whose time orders the messages (as the logging server writes them)."""
    return f"{seconds}.M{n:06d}P1Q{n}.testhost"


@pytest.fixture
def boxes(tmp_path: Path) -> dict[str, Mailbox]:
    return {
        "queue": Mailbox("queue", "Replies", maildir.ensure(tmp_path / "run" / "queue"), "log"),
        "sent": Mailbox("sent", "Sent", maildir.ensure(tmp_path / "run" / "web-sent"), "sent"),
    }


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    found = Index(tmp_path / "run" / "web-index.sqlite")
    yield found
    found.close()


def test_three_hundred_messages_listed_newest_first_in_pages(boxes: dict[str, Mailbox], index: Index) -> None:
    base = 1_760_000_000
    for i in range(300):
        maildir.write(boxes["queue"].path, make(i), key=key_at(base + i, i), sync=False)
    assert index.refresh(boxes.values()) == 300
    assert index.refresh(boxes.values()) == 0  # nothing new: nothing parsed again

    seen: list[str] = []
    cursor = None
    while True:
        page = index.query(["queue"], limit=70, before=cursor)
        assert page.total == 300
        seen += [r.subject for r in page.rows]
        cursor = page.next
        if cursor is None:
            break
    assert len(seen) == 300 and len(set(seen)) == 300
    assert seen[0].startswith("message 299 ") and seen[-1].startswith("message 0 ")
    stamps = [r.timestamp for r in index.query(None, limit=300).rows]
    assert stamps == sorted(stamps, reverse=True)


def test_a_request_budget_indexes_the_newest_first_and_says_what_is_left(boxes: dict[str, Mailbox],
                                                                        index: Index) -> None:
    base = 1_760_000_000
    for i in range(1000):
        maildir.write(boxes["queue"].path, make(i), key=key_at(base + i, i), sync=False)
    # A request's refresh with its budget already spent still indexes one batch: the newest mail.
    assert index.refresh(boxes.values(), budget=0.0) == BATCH
    assert index.pending() == 1000 - BATCH
    page = index.query(["queue"], limit=5)
    assert page.total == BATCH and page.rows[0].subject.startswith("message 999 ")
    # The background refresh finishes the job; the folder is complete afterwards.
    assert index.refresh(boxes.values()) == 1000 - BATCH
    assert index.pending() == 0 and index.query(["queue"], limit=1).total == 1000
    assert index.refresh(boxes.values(), budget=0.0) == 0


def test_a_spent_budget_indexes_one_batch_in_all_not_one_per_mailbox(boxes: dict[str, Mailbox],
                                                                     index: Index) -> None:
    base = 1_760_000_000
    for i in range(600):
        maildir.write(boxes["queue"].path, make(i), key=key_at(base + i, i), sync=False)
        maildir.write(boxes["sent"].path, make(i), key=key_at(base + i, 10_000 + i), sync=False)
    assert index.refresh(boxes.values(), budget=0.0) == BATCH
    assert index.pending() == 1200 - BATCH
    assert index.refresh(boxes.values()) == 1200 - BATCH and index.pending() == 0


def test_queries_are_answered_while_a_first_indexing_runs(boxes: dict[str, Mailbox], index: Index) -> None:
    base = 1_760_000_000
    count = 3000
    for i in range(count):
        maildir.write(boxes["queue"].path, make(i), key=key_at(base + i, i), sync=False)
    indexing = threading.Thread(target=index.refresh, args=(list(boxes.values()),))
    indexing.start()
    partial: list[int] = []
    took_over: list[int] = []
    try:
        while indexing.is_alive():
            total = index.query(["queue"], limit=1).total  # never waits for the whole indexing
            if 0 < total < count:
                partial.append(total)
                if not took_over and total <= count // 2:  # a request meanwhile: answered from what is there, not made to wait
                    took_over.append(index.refresh(boxes.values(), budget=0.05))
                    assert index.pending() > 0
            time.sleep(0.002)
    finally:
        indexing.join(120)
    assert partial, "no query was answered between two of the indexing's batches"
    assert partial == sorted(partial) and took_over == [0]
    assert index.pending() == 0 and index.query(["queue"], limit=1).total == count


def test_search_words_fields_prefixes_and_all_words(boxes: dict[str, Mailbox], index: Index) -> None:
    base = 1_760_000_000
    for i in range(200):
        maildir.write(boxes["queue"].path, make(i), key=key_at(base + i, i), sync=False)
    maildir.write(boxes["sent"].path, make(999, sender="Zoë <zoe@elsewhere.net>", subject="Crème brûlée",
                                           body="unusualword in the body\n"), key=key_at(base + 500, 999), sync=False)
    index.refresh(boxes.values())

    def subjects(q: str, boxes_: list[str] | None = None) -> list[str]:
        return [r.subject for r in index.query(boxes_, q, limit=500).rows]

    assert subjects("unusualword") == ["Crème brûlée"]
    assert subjects("unusual") == ["Crème brûlée"]  # a prefix
    assert subjects("creme") == ["Crème brûlée"]  # diacritics folded
    assert subjects("from:zoe") == ["Crème brûlée"]
    assert subjects("from:elsewhere.net") == ["Crème brûlée"]
    assert subjects("subject:unusualword") == []  # in the body, not the subject
    assert subjects("unusualword", ["queue"]) == []
    # Subject word "apple": i % 5 == 0; body word "apple": (i + 2) % 5 == 0.
    apple = subjects("subject:apple")
    assert len(apple) == 40 and all("apple" in s for s in apple)
    assert len(subjects("apple")) == 80
    both = subjects("subject:apple from:user0")
    assert both and all(int(s.split()[1]) % 35 == 0 for s in both)
    assert len(subjects('"message 7 about"')) == 1
    assert subjects("to:hello@test.com", ["sent"]) == ["Crème brûlée"]
    assert subjects("nomatchatall") == []
    # Whatever is typed is words, never FTS5 syntax.
    for hostile in ['"', "AND OR NOT", "a*", "(", "NEAR(a b)", "from:", "x:y", "'; DROP TABLE messages; --", "^"]:
        index.query(None, hostile)
    assert fts_query("   ") is None
    with pytest.raises(BadQuery):
        index.query(None, before="not-a-cursor")


def test_moved_to_cur_keeps_its_key_and_deleted_files_leave(boxes: dict[str, Mailbox], index: Index) -> None:
    box = boxes["queue"]
    keys = [maildir.write(box.path, make(i), key=key_at(1_760_000_000 + i, i), sync=False) for i in range(10)]
    index.refresh(boxes.values())
    before = index.get("queue", keys[3])
    assert before is not None and before.sub == "new"

    os.rename(box.path / "new" / keys[3], box.path / "cur" / f"{keys[3]}:2,S")
    (box.path / "new" / keys[4]).unlink()
    time.sleep(0.01)
    index.refresh(boxes.values())
    after = index.get("queue", keys[3])
    assert after is not None and after.id == before.id and after.sub == "cur" and after.fname == f"{keys[3]}:2,S"
    assert index.get("queue", keys[4]) is None
    assert index.query(["queue"]).total == 9
    assert index.query(None, "message 4 about").total == 0  # its search row went too

    # A mailbox that is no longer found loses its rows.
    index.refresh([boxes["sent"]])
    assert index.query(None).total == 0


def test_thread_in_both_directions_across_mailboxes(boxes: dict[str, Mailbox], index: Index) -> None:
    base = 1_760_000_000
    maildir.write(boxes["sent"].path, make(1, mid="<ask@example.org>"), key=key_at(base, 1), sync=False)
    maildir.write(boxes["queue"].path, make(2, mid="<answer@test.com>", reply_to_id="<ask@example.org>"),
                  key=key_at(base + 1, 2), sync=False)
    maildir.write(boxes["sent"].path, make(3, mid="<again@example.org>", reply_to_id="<answer@test.com>"),
                  key=key_at(base + 2, 3), sync=False)
    maildir.write(boxes["queue"].path, make(4, mid="<other@test.com>"), key=key_at(base + 3, 4), sync=False)
    index.refresh(boxes.values())
    for key, box in ((key_at(base, 1), "sent"), (key_at(base + 1, 2), "queue"), (key_at(base + 2, 3), "sent")):
        row = index.get(box, key)
        assert row is not None
        assert [r.message_id for r in index.thread(row)] == ["<ask@example.org>", "<answer@test.com>",
                                                            "<again@example.org>"]
    lonely = index.get("queue", key_at(base + 3, 4))
    assert lonely is not None and [r.message_id for r in index.thread(lonely)] == ["<other@test.com>"]


def test_hostile_messages_are_indexed_without_harm(boxes: dict[str, Mailbox], index: Index) -> None:
    box = boxes["queue"].path
    deep = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(3000))
    hostile = {
        "charset": b"From: a@b.c\r\nSubject: =?x-no-such-charset?q?hi?=\r\nContent-Type: text/plain; "
                   b"charset=x-no-such-charset\r\n\r\nbody \xff\xfe words\r\n",
        "header": b"From: a@b.c\r\nSubject: " + b"x" * 2_000_000 + b"\r\n\r\nbig header\r\n",
        "deep": b"From: a@b.c\r\nSubject: deep\r\n" + deep,
        "binary": bytes(range(256)) * 100,
        "empty": b"",
        "base64": b"From: a@b.c\r\nSubject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!notbase64===\r\n",
        "date": b"From: a@b.c\r\nDate: Mon, 99 Foo 99999 99:99:99 +9999\r\nSubject: bad date\r\n\r\nx\r\n",
    }
    for n, data in enumerate(hostile.values()):
        maildir.write(box, data, key=key_at(1_760_000_000 + n, n), sync=False)
    started = time.monotonic()
    assert index.refresh(boxes.values()) == len(hostile)
    assert time.monotonic() - started < 60
    rows = index.query(["queue"], limit=50).rows
    assert len(rows) == len(hostile)
    assert all(len(r.subject) <= 8 * 1024 for r in rows)
    assert index.query(None, "words").total == 1
    assert index.query(None, "subject:deep").total == 1


def test_index_file_is_private(boxes: dict[str, Mailbox], index: Index) -> None:
    maildir.write(boxes["queue"].path, make(1), sync=False)
    index.refresh(boxes.values())
    assert stat.S_IMODE(index.path.stat().st_mode) == 0o600


def test_a_rebuilt_index_finds_the_same_messages(tmp_path: Path, boxes: dict[str, Mailbox]) -> None:
    for i in range(20):
        maildir.write(boxes["queue"].path, make(i), key=key_at(1_760_000_000 + i, i), sync=False)
    first = Index(tmp_path / "run" / "web-index.sqlite")
    first.refresh(boxes.values())
    first.close()
    again = Index(tmp_path / "run" / "web-index.sqlite")  # reopened: rows kept, nothing parsed again
    try:
        assert again.refresh(boxes.values()) == 0
        assert again.query(None).total == 20
    finally:
        again.close()


def test_html_only_mail_is_searched_by_its_visible_words(boxes: dict[str, Mailbox], index: Index) -> None:
    msg = EmailMessage()
    msg["From"] = "news@example.org"
    msg["Subject"] = "HTML only"
    msg.set_content("<html><head><title>titleword</title><style>p{color:red}</style></head><body>"
                    "<p>Visible&nbsp;paragraphword</p><script>var scriptword = 1;</script>"
                    "<div>caf&eacute; second</div><script>unclosed endword", subtype="html")
    maildir.write(boxes["queue"].path, msg.as_bytes(), sync=False)
    index.refresh(boxes.values())
    assert index.query(None, "paragraphword").total == 1
    assert index.query(None, "café").total == 1
    assert index.query(None, "scriptword").total == 0 and index.query(None, "titleword").total == 0
    assert index.query(None, "endword").total == 0
    (row,) = index.query(None).rows
    assert row.has_html and row.snippet == "Visible paragraphword café second"


def test_two_processes_sharing_one_index(tmp_path: Path, boxes: dict[str, Mailbox]) -> None:
    """Two web servers on one project (supervisord's and one started by hand) share run/web-index.sqlite."""
    one = Index(tmp_path / "run" / "web-index.sqlite")
    two = Index(tmp_path / "run" / "web-index.sqlite")
    try:
        for i in range(5):
            maildir.write(boxes["queue"].path, make(i), key=key_at(1_760_000_000 + i, i), sync=False)
        assert one.refresh(boxes.values()) == 5
        assert two.refresh(boxes.values()) == 0  # already there: taken over, not parsed again and again
        assert two._files["queue"].keys() == one._files["queue"].keys()
        assert two.query(None).total == 5 and two.query(None, "message 3 about").total == 1
    finally:
        one.close()
        two.close()


def test_a_broken_index_file_is_rebuilt(tmp_path: Path, boxes: dict[str, Mailbox]) -> None:
    maildir.write(boxes["queue"].path, make(1), sync=False)
    path = tmp_path / "run" / "web-index.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    rebuilt = Index(path)
    try:
        assert rebuilt.refresh(boxes.values()) == 1 and rebuilt.query(None).total == 1
    finally:
        rebuilt.close()
