"""Learning from the folders people sort mistakes into (``lamson spam -learn-from``), idempotently.

A filter in production is kept right by its errors: a user moves a missed spam
into a "spam" folder, a false alarm into "ham", and a cron job feeds the
folders back. Run every hour over folders that keep their old messages, the
same message is seen again and again, and a message may later move from one
folder to the other. So:

* **Each message counts once.** The store keeps a *digest set*, the hash
  ``NS:spam:STORAGE:learnt`` (digest -> "spam" / "ham"). A message whose
  digest is recorded with the same kind is skipped; one recorded with the
  other kind (moved from ham to spam, or back) is untrained from that kind
  and trained as this one; a new one is trained. The digest is SHA-256 of
  the message as read (its first ``max_message_bytes``, line ends made
  ``\\n``), so the Maildir flags in a file name, or a copy kept in another
  folder, do not make it a new message.
* **One run, all or nothing, bounded memory**: the run is a
  :class:`lamson.spam.training.TrainingRun` (counts staged in expiring Redis
  hashes, applied by one Lua script at the end); the digests it records are
  staged with its counts and applied by the same script, so a killed run
  leaves both the counts and the digest set as they were. Messages are read
  one at a time (:func:`lamson.spam.training.read_messages`).
* A message met twice in one run (two copies, or one in both folders) is
  learnt the first time only, and stays what it was learnt as: ``spam/`` is
  read before ``ham/``, so a message in both is spam (every run records the
  digests it meets, known ones too, in its staging: memory stays bounded).

Runs over the same storage should not overlap (each checks the digest set as
it was when it read a message); a cron job under ``flock`` guarantees it
(docs/spam.md).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lamson.spam.filter import Filter
from lamson.spam.training import TrainingRun, read_messages

KINDS = ("spam", "ham")


@dataclass
class Learnt:
    """What one kind's folder did in a run."""

    kind: str
    path: str
    read: int = 0
    new: int = 0
    moved: int = 0
    known: int = 0
    repeated: int = 0

    def summary(self) -> str:
        return (f"{self.kind} from {self.path}: {self.read} read, {self.new} learnt, {self.moved} moved from "
                f"{'ham' if self.kind == 'spam' else 'spam'}, {self.known} already known"
                + (f", {self.repeated} met twice in this run" if self.repeated else ""))


@dataclass
class Report:
    folders: list[Learnt] = field(default_factory=list)

    @property
    def read(self) -> int:
        return sum(item.read for item in self.folders)


def digest(data: bytes) -> str:
    """The message's identity in the digest set: SHA-256 of its bytes with CRLF made LF."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def sources(folder: str | Path, kind: str | None) -> list[tuple[str, Path]]:
    """(kind, path) to read: ``folder`` itself as ``kind``, or without a kind its ``spam`` and ``ham``
    sub-folders (at least one must exist); FileNotFoundError naming what is missing."""
    where = Path(folder)
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"learn as spam or ham, not {kind!r}")
        if not where.exists():
            raise FileNotFoundError(f"no Maildir, folder or mbox file at {where}")
        return [(kind, where)]
    found = [(name, where / name) for name in KINDS if (where / name).exists()]
    if not found:
        raise FileNotFoundError(f"{where} has neither a spam/ nor a ham/ folder (or say which it is with -as)")
    return found


def learn_from(spam: Filter, folder: str | Path, kind: str | None = None, *, every: int = 1000,
               progress: Callable[[str], None] | None = None) -> Report:
    """Learn the messages of ``folder`` (see the module doc); ``progress`` gets a line every ``every``
    messages read. Everything is applied at the end, at once; an exception leaves the filter as it was."""
    report = Report()
    started = time.monotonic()
    read = 0
    with TrainingRun(spam.store) as run:
        for name, path in sources(folder, kind):
            learnt = Learnt(name, str(path))
            report.folders.append(learnt)
            other = "ham" if name == "spam" else "spam"
            for data in read_messages(path, spam.config.max_message_bytes):
                learnt.read += 1
                read += 1
                key = digest(data)
                before, now = run.known(key)
                if now is not None:
                    learnt.repeated += 1
                elif before == name:
                    learnt.known += 1
                    run.mark(key, name)  # met in this run: a copy in the other folder is then a repeat
                else:
                    tokens = spam.tokens(data)
                    run.mark(key, name)
                    if before == other:
                        run.add(f"untrain-{other}", tokens)
                        learnt.moved += 1
                    else:
                        learnt.new += 1
                    run.add(f"train-{name}", tokens)
                if progress is not None and every > 0 and read % every == 0:
                    progress(f"learn-from: {read} messages read in {time.monotonic() - started:.1f} s "
                             f"({learnt.kind}: {learnt.new} learnt, {learnt.moved} moved, {learnt.known} known)")
    return report
