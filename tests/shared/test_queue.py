"""lamson.queue.Queue: the guide's Maildir queue with Lamson 1.x's safe / pop_limit / oversize_dir."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest

from lamson import maildir
from lamson.mail import MailResponse
from lamson.queue import Queue, safe_host

SMALL = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: small\r\n\r\nhi\r\n"
BIG = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: big\r\n\r\n" + b"x" * 5000 + b"\r\n"


def test_push_get_pop_as_in_the_guide(tmp_path: Path) -> None:
    queue = Queue(tmp_path / "posts")
    key = queue.push(MailResponse(To="b@example.org", From="a@example.com", Subject="s", Body="b"))
    assert queue.count() == 1 and queue.keys() == [key]
    msg = queue.get(key)
    assert msg["subject"] == "s" and msg.Peer == str(tmp_path / "posts")
    assert msg.route_to == {"b@example.org"} and msg.route_from == "a@example.com"  # from the headers
    assert queue.count() == 1  # get keeps it
    popped_key, popped = queue.pop()
    assert popped_key == key and popped["subject"] == "s"
    assert queue.pop() == (None, None) and queue.count() == 0


def test_positional_1x_signature(tmp_path: Path) -> None:
    queue = Queue(str(tmp_path / "q"), True, 100, str(tmp_path / "big"))
    assert (queue.safe, queue.pop_limit, queue.oversize_dir) == (True, 100, tmp_path / "big")
    assert (tmp_path / "big" / "new").is_dir()


def test_safe_names_files_by_a_hash_of_the_host(tmp_path: Path) -> None:
    plain = Queue(tmp_path / "plain").push(SMALL)
    safe = Queue(tmp_path / "safe", safe=True).push(SMALL)
    host = socket.gethostname()
    assert safe.endswith("." + safe_host()) and host not in safe
    assert len(safe_host()) == 16
    assert maildir.check_key(safe) == safe
    assert plain != safe


def test_pop_limit_moves_big_messages_to_oversize_dir(tmp_path: Path) -> None:
    queue = Queue(tmp_path / "q", pop_limit=1000, oversize_dir=tmp_path / "big")
    big_key = queue.push(BIG)
    small_key = queue.push(SMALL)
    key, msg = queue.pop()
    assert key == small_key and msg["subject"] == "small"
    assert queue.count() == 0  # the big one left the queue...
    assert (tmp_path / "big" / "new" / big_key).read_bytes() == BIG  # ...intact, in oversize_dir/new
    assert queue.pop() == (None, None)
    assert os.listdir(tmp_path / "q" / "tmp") == []


def test_pop_limit_without_oversize_dir_deletes(tmp_path: Path) -> None:
    queue = Queue(tmp_path / "q", pop_limit=1000)
    queue.push(BIG)
    assert queue.pop() == (None, None)
    assert queue.count() == 0 and os.listdir(tmp_path / "q" / "tmp") == []


def test_no_pop_limit_returns_everything(tmp_path: Path) -> None:
    queue = Queue(tmp_path / "q")
    queue.push(BIG)
    key, msg = queue.pop()
    assert key is not None and msg["subject"] == "big"


def test_oversize_by_key(tmp_path: Path) -> None:
    queue = Queue(tmp_path / "q", oversize_dir=tmp_path / "big")
    key = queue.push(SMALL)
    assert queue.oversize(key) is True
    assert queue.count() == 0 and Queue(tmp_path / "big").get(key)["subject"] == "small"
    assert queue.oversize(key) is False
    with pytest.raises(maildir.BadKey):
        queue.oversize("../escape")


def test_oversize_across_file_systems_copies_durably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = Queue(tmp_path / "q", pop_limit=10, oversize_dir=tmp_path / "big")
    key = queue.push(BIG)
    real_rename = os.rename

    def rename(src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        if str(dst).startswith(str(tmp_path / "big" / "new")) and str(src).startswith(str(tmp_path / "q")):
            raise OSError(errno.EXDEV, "cross-device link")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    assert queue.pop() == (None, None)
    assert (tmp_path / "big" / "new" / key).read_bytes() == BIG
    assert os.listdir(tmp_path / "big" / "tmp") == [] and os.listdir(tmp_path / "q" / "tmp") == []


def test_failed_set_aside_puts_the_message_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = Queue(tmp_path / "q", pop_limit=10, oversize_dir=tmp_path / "big")
    key = queue.push(BIG)
    real_rename = os.rename

    def rename(src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        if str(dst).startswith(str(tmp_path / "big")):
            raise OSError(errno.EACCES, "denied")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        queue.pop()
    assert queue.keys() == [key] and queue.get_bytes(key) == BIG


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Queue(tmp_path / "q", pop_limit=-1)
    with pytest.raises(ValueError):
        Queue(tmp_path / "q", oversize_dir=tmp_path / "q")
