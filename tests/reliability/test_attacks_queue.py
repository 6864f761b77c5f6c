"""``lamson queue`` cannot reach outside its Maildir: the cases tests/cli does not cover.

tests/cli/test_usage.py already covers traversal keys (``../../etc/passwd``,
absolute paths, ``new/...``, NUL, empty), a symlink in new/ for -get and
-remove, and traversal from a real process. Here, as real processes: a
symlink in cur/ reached through the info suffix, and the commands that take
no key (-pop, -clear, -count, -keys) meeting symlinks planted in the Maildir.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamson import maildir
from tests.support import run_lamson

SECRET = b"secret: do not print or delete me\n"


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A queue with one real message and symlinks to a secret file in new/ and cur/."""
    queue = maildir.ensure(tmp_path / "run" / "queue")
    maildir.write(queue, b"Subject: real\r\n\r\nreal\r\n", key="1000.A.host")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    (queue / "new" / "0999.EVIL.host").symlink_to(secret)  # sorts first: -pop would take it
    (queue / "cur" / "1001.EVIL.host:2,S").symlink_to(secret)
    return queue, secret


def lamson_queue(cwd: Path, *args: str) -> tuple[int, bytes, str]:
    result = run_lamson("queue", *args, cwd=cwd, env={"LAMSON_ROOT": str(cwd)})
    return result.returncode, result.stdout, result.stderr.decode(errors="replace")


@pytest.mark.parametrize("key", ["1001.EVIL.host", "1001.EVIL.host:2,S", "0999.EVIL.host"])
def test_symlinks_in_new_and_cur_are_refused(planted: tuple[Path, Path], key: str) -> None:
    queue, secret = planted
    root = queue.parent.parent
    for action in ("-get", "-remove"):
        code, out, err = lamson_queue(root, action, key)
        assert code == 2, (action, key, code, err)
        assert SECRET not in out and "not a regular file" in err
    assert secret.read_bytes() == SECRET


def test_keyless_commands_ignore_planted_symlinks(planted: tuple[Path, Path]) -> None:
    queue, secret = planted
    root = queue.parent.parent
    assert lamson_queue(root, "-count")[1] == b"1\n"
    assert lamson_queue(root, "-keys")[1] == b"1000.A.host\n"
    code, out, _ = lamson_queue(root, "-pop")
    assert code == 0 and out.startswith(b"1000.A.host\n") and SECRET not in out
    code, out, _ = lamson_queue(root, "-pop")
    assert code == 1 and SECRET not in out  # empty: the symlinks are not messages
    maildir.write(queue, b"Subject: again\r\n\r\nagain\r\n")
    code, out, _ = lamson_queue(root, "-clear")
    assert code == 0 and b"removed 1" in out
    assert secret.read_bytes() == SECRET
    assert os.path.islink(queue / "new" / "0999.EVIL.host")  # left for the operator to look at
