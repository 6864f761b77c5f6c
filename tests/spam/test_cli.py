"""``lamson spam`` as a user runs it: real processes, a real Redis, Maildirs and mbox files on disk."""

from __future__ import annotations

import mailbox
from pathlib import Path

import redis

from lamson import maildir
from tests.cli.conftest import base_env
from tests.spam.corpus import NEW_HAM, NEW_SPAM
from tests.support import free_port, make_project, run_lamson


def write_maildir(path: Path, messages: list[bytes]) -> Path:
    maildir.ensure(path)
    for data in messages:
        maildir.write(path, data, sync=False)
    return path


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    for data in messages:
        box.add(data)
    box.flush()
    box.close()
    return path


def lamson(*args: str, cwd: Path, stdin: bytes | None = None) -> tuple[int, str, str]:
    done = run_lamson("spam", *args, cwd=cwd, env=base_env(cwd), input=stdin)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_train_from_maildir_and_mbox_then_score_and_stats(tmp_path: Path, redis_url: str, redis_conn: redis.Redis,
                                                         training: tuple[list[bytes], list[bytes]]) -> None:
    ham, spam = training
    spam_dir = write_maildir(tmp_path / "spam", spam)
    ham_box = write_mbox(tmp_path / "ham.mbox", ham)
    code, out, err = lamson("-redis", redis_url, "-train-spam", str(spam_dir), "-train-ham", str(ham_box),
                            cwd=tmp_path)
    assert code == 0, err
    assert f"trained {len(spam)} spam messages from {spam_dir}" in out
    assert f"trained {len(ham)} ham messages from {ham_box}" in out
    assert redis_conn.hget("lamson:spam:run/spamdb:meta", "nspam") == str(len(spam)).encode()

    (tmp_path / "new.eml").write_bytes(NEW_SPAM)
    code, out, err = lamson("-redis", redis_url, "-score", str(tmp_path / "new.eml"), cwd=tmp_path)
    assert code == 0, err
    value, label = out.split()
    assert label == "spam" and float(value) >= 0.9

    code, out, err = lamson("-redis", redis_url, "-score", "-", "-explain", cwd=tmp_path, stdin=NEW_HAM)
    assert code == 0, err
    first, *tokens = out.splitlines()
    assert first.split()[1] == "ham" and tokens and all(line.startswith("  0.") for line in tokens)

    code, out, err = lamson("-redis", redis_url, "-stats", cwd=tmp_path)
    assert code == 0, err
    assert f"messages trained: {len(ham) + len(spam)} ({len(spam)} spam, {len(ham)} ham)" in out
    assert "storage: lamson:spam:run/spamdb" in out

    code, out, err = lamson("-redis", redis_url, "-untrain-spam", str(spam_dir), "-stats", cwd=tmp_path)
    assert code == 0, err
    assert f"untrained {len(spam)} spam messages" in out and f"(0 spam, {len(ham)} ham)" in out


def test_the_application_settings_give_redis_and_namespace(tmp_path: Path, redis_url: str,
                                                           redis_conn: redis.Redis) -> None:
    root = tmp_path / "app"
    make_project(root, redis_url, copy_demo=False, extra="namespace = 'spamcli'")
    write_maildir(root / "run" / "spam", [NEW_SPAM])
    code, out, err = lamson("-train-spam", "run/spam", "-storage", "run/other", "-stats", cwd=root)
    assert code == 0, err
    assert "trained 1 spam message from run/spam" in out and "storage: spamcli:spam:run/other" in out
    assert redis_conn.hget("spamcli:spam:run/other:meta", "nspam") == b"1"
    assert not redis_conn.exists("lamson:spam:run/other:meta")


def test_bad_use_is_one_line(tmp_path: Path, redis_url: str) -> None:
    code, _, err = lamson("-redis", redis_url, cwd=tmp_path)
    assert code == 2 and "say what to do" in err and len(err.strip().splitlines()) == 1
    code, _, err = lamson("-redis", redis_url, "-train-spam", str(tmp_path / "missing"), cwd=tmp_path)
    assert code == 1 and "no Maildir, folder or mbox file" in err and "Traceback" not in err
    (tmp_path / "bad.ini").write_text("[classifier]\nspam_cutof = 0.9\n")
    code, _, err = lamson("-redis", redis_url, "-filter-config", str(tmp_path / "bad.ini"), "-stats", cwd=tmp_path)
    assert code == 1 and "spam_cutof" in err and "Traceback" not in err
    code, _, err = lamson("-redis", f"redis://127.0.0.1:{free_port()}/0", "-stats", cwd=tmp_path)
    assert code == 1 and "cannot reach Redis" in err and "Traceback" not in err
    code, _, err = lamson("-stats", cwd=tmp_path)  # no application here and no -redis
    assert code == 1 and "settings" in err and "Traceback" not in err
