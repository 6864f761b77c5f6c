"""``lamson spam``: train the application's spam filter, score a message, show what it knows.

Training (``-train-*``) reads Maildir folders (``cur/`` and ``new/``), plain folders of
message files, or mbox files; several actions may be given at once (e.g.
``-train-spam`` and ``-train-ham``), and they are one run: files are read a
message at a time (memory stays bounded however big they are) and the counts
reach the filter all at once at the end, so an interrupted run changes
nothing. The filter's counts are in the
application's Redis (its ``redis_url`` and ``namespace`` settings, or
``-redis URL``), under the storage name the handlers' ``@spam_filter``
uses (``-storage``, default ``run/spamdb``). See docs/spam.md.

``-learn-from DIR`` is for the folders people sort the filter's mistakes into
(``DIR/spam`` and ``DIR/ham``, or ``DIR`` with ``-as spam|ham``): run as often as
wanted, it learns each message once, moves a message that changed folders from
one kind to the other, prints progress on stderr, and is all or nothing too
(lamson.spam.learning).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lamson.cli.framework import Command, CommandError, Parser, UsageError, app_options, option

if TYPE_CHECKING:
    from lamson.spam import Filter

DEFAULT_STORAGE = "run/spamdb"
_TRAINING = ("train-spam", "train-ham", "untrain-spam", "untrain-ham")


def configure(parser: Parser) -> None:
    for name in _TRAINING:
        verb, kind = name.split("-")
        option(parser, name, metavar="PATH", action="append", default=[],
               help=f"{verb} as {kind} every message of PATH (a Maildir, a folder of messages or an mbox file; "
                    "may be repeated)")
    option(parser, "learn-from", metavar="DIR", default=None,
           help="learn the mistakes sorted into DIR/spam and DIR/ham (Maildirs or folders of messages), "
                "each message once however often it is run; a message moved from ham to spam is unlearnt "
                "from ham (or: DIR is one folder, with -as)")
    option(parser, "as", metavar="KIND", dest="learn_as", choices=("spam", "ham"), default=None,
           help="with -learn-from: DIR itself (a Maildir, folder or mbox file) holds spam, or ham")
    option(parser, "progress", metavar="N", type=int, default=1000,
           help="with -learn-from: a progress line on stderr every N messages (default 1000; 0: none)")
    option(parser, "score", metavar="FILE", help="print the score and label of the message in FILE (- for stdin)")
    option(parser, "explain", action="store_true", help="with -score: also the tokens that decided it")
    option(parser, "stats", action="store_true", help="print how many messages and tokens were trained")
    option(parser, "clear", action="store_true", help="forget everything this storage has learnt")
    option(parser, "storage", default=DEFAULT_STORAGE, metavar="NAME",
           help=f"the filter's storage name, as given to Filter/@spam_filter (default: {DEFAULT_STORAGE})")
    option(parser, "filter-config", metavar="INI", default=None,
           help="the filter's settings (cutoffs, tokenizer limits): an INI file (default: built-in defaults)")
    option(parser, "redis", metavar="URL", default=None,
           help="the Redis holding the counts (default: the application's redis_url)")
    app_options(parser)


def run(args: argparse.Namespace) -> int:
    training = [(name, path) for name in _TRAINING for path in getattr(args, name.replace("-", "_"))]
    if args.learn_as and not args.learn_from:
        raise UsageError("lamson spam: -as goes with -learn-from DIR")
    if not (training or args.learn_from or args.score or args.stats or args.clear):
        raise UsageError("lamson spam: say what to do: -learn-from, -train-spam, -train-ham, -untrain-spam, "
                         "-untrain-ham, -score, -stats or -clear (see: lamson help -for spam)")
    if args.learn_from and training:
        raise UsageError("lamson spam: -learn-from is a run of its own: not with -train-* or -untrain-*")
    if args.explain and not args.score:
        raise UsageError("lamson spam: -explain goes with -score FILE")
    import redis

    spam = open_filter(args)
    try:
        if args.clear:
            spam.clear()
            print(f"cleared spam filter {args.storage}")
        if training:
            train_all(spam, training)
        if args.learn_from:
            learn(spam, args.learn_from, args.learn_as, args.progress)
        if args.score:
            score(spam, args.score, args.explain)
        if args.stats:
            stats(spam, args.storage)
    except redis.RedisError as exc:
        raise CommandError(f"cannot reach Redis: {exc}", code=1) from None
    return 0


def open_filter(args: argparse.Namespace) -> Filter:
    """The Filter on the application's Redis and namespace (or -redis URL with the app's namespace)."""
    from lamson import settings as lsettings
    from lamson.cli.queuecmd import app_settings
    from lamson.connection import connect
    from lamson.names import DEFAULT_NAMESPACE, Names, names_for
    from lamson.spam import ConfigError, Filter

    try:
        conf = app_settings(args)
    except lsettings.SettingsError:
        if args.redis is None:
            raise
        conf = None  # -redis given and no application here: the default namespace
    names = names_for(conf) if conf is not None else Names(DEFAULT_NAMESPACE)
    url = args.redis or conf.redis_url
    try:
        return Filter(args.storage, args.filter_config, redis=connect(url, timeout=2.0), names=names)
    except ConfigError as exc:
        raise CommandError(str(exc), code=1) from None


def train_all(spam: Filter, training: list[tuple[str, str]]) -> None:
    """Every training action of the command line as one run: streamed, then applied all at once.

    Each file is read a message at a time, and of each message only what the tokenizer reads
    (lamson.spam.training); the counts reach the filter only when every path has been read,
    so an interrupted or killed run leaves it as it was.
    """
    from lamson.spam.training import TrainingRun, read_messages

    done: list[str] = []
    with TrainingRun(spam.store) as run:
        for action, path in training:
            count = 0
            try:
                for data in read_messages(path, spam.config.max_message_bytes):
                    run.add(action, spam.tokens(data))
                    count += 1
            except FileNotFoundError:
                raise CommandError(f"no Maildir, folder or mbox file at {path}", code=1) from None
            except OSError as exc:
                raise CommandError(f"cannot read {path}: {exc.strerror or exc}", code=1) from None
            verb, kind = action.split("-")
            done.append(f"{verb}ed {count} {kind} message{'s' if count != 1 else ''} from {path}")
    for line in done:
        print(line)


def learn(spam: Filter, folder: str, kind: str | None, every: int) -> None:
    """``-learn-from``: lamson.spam.learning, with its progress on stderr and a summary per folder."""
    from lamson.spam.learning import learn_from

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        report = learn_from(spam, folder, kind, every=every, progress=progress)
    except FileNotFoundError as exc:
        raise CommandError(str(exc.args[0] if exc.args else exc), code=1) from None
    except OSError as exc:
        raise CommandError(f"cannot read {folder}: {exc.strerror or exc}", code=1) from None
    for learnt in report.folders:
        print(f"learnt {learnt.summary()}")


def score(spam: Filter, path: str, explain: bool) -> None:
    from lamson.spam import classifier

    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}", code=1) from None
    value, decided_by = spam.explain(data)
    print(f"{value:.4f} {classifier.label(value, spam.config)}")
    if explain:
        for token, probability in decided_by:
            print(f"  {probability:.4f}  {token}")


def stats(spam: Filter, storage: str) -> None:
    found = spam.stats()
    store = spam.store
    where = getattr(store, "meta_key", storage).rsplit(":", 1)[0]
    print(f"storage: {where}")
    print(f"messages trained: {found.nspam + found.nham} ({found.nspam} spam, {found.nham} ham)")
    print(f"tokens: {found.tokens} ({found.spam_tokens} seen in spam, {found.ham_tokens} seen in ham)")


COMMANDS = {
    "spam": Command(
        name="spam",
        summary="train the spam filter from Maildirs or mbox files, score a message, show its statistics",
        examples=("lamson spam -train-spam run/spam -train-ham ham.mbox",
                  "lamson spam -learn-from ~/Maildir/.Corrections   # its spam/ and ham/ Maildirs",
                  "lamson spam -learn-from ~/Maildir/.Junk -as spam",
                  "lamson spam -score message.eml",
                  "lamson spam -score - -explain < message.eml",
                  "lamson spam -stats -storage run/spamdb"),
        configure=configure,
        run=run,
        description=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    ),
}
