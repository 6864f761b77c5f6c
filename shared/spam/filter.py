"""``Filter``: train on ham and spam, score and label new mail.

Where the counts live is decided at each call, not at construction, because
handler modules build their filters at import time (``@spam_filter(...)``),
before a test's ``config/testing.py`` or a worker has set anything up:

1. ``store=`` given to the constructor, else a Redis store over ``redis=``
   (a connection) or ``redis_url=``;
2. else, after :func:`use_memory_store`, the process-wide
   :class:`~lamson.spam.store.MemoryStore` of this storage name;
3. else the worker's context (:func:`lamson.context.get`): its Redis and the
   application's namespace, so every router worker shares one trained filter;
4. else the application's settings (``redis_url``, ``namespace``), as
   :class:`lamson.confirm.ConfirmationStorage` does in scripts and the CLI.
"""

from __future__ import annotations

import logging
import os
from email.message import Message
from typing import Any

import redis

from lamson import context
from lamson.names import DEFAULT_NAMESPACE, Names, names_for
from lamson.spam import classifier
from lamson.spam.config import SpamConfig, load_config
from lamson.spam.store import Counts, MemoryStore, RedisStore, Stats, TokenStore
from lamson.spam.tokenizer import CLASSIFICATION_HEADER, tokenize

log = logging.getLogger(__name__)

_memory = False


def use_memory_store(enabled: bool = True) -> None:
    """Make every Filter of this process without an explicit store keep its counts in memory.

    For an application's handler tests, which run without Redis
    (``config/testing.py``): filters created by storage name, including those
    ``@spam_filter`` creates, then share one :class:`MemoryStore` per name.
    ``use_memory_store(False)`` goes back to Redis.
    """
    global _memory
    _memory = bool(enabled)


def memory_store_in_use() -> bool:
    """True after :func:`use_memory_store` (and until it is turned off)."""
    return _memory


class Filter:
    """A spam filter over the token store named ``storage`` (see the module doc for where it lives).

    ``config``: None (defaults), a dict or the path of an INI file of
    :class:`~lamson.spam.config.SpamConfig` settings. Every method taking a
    message accepts a :class:`lamson.mail.MailRequest`, an
    ``email.message.Message`` or the raw message as bytes or str.
    """

    def __init__(
        self,
        storage: str,
        config: SpamConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
        *,
        redis: redis.Redis | None = None,
        redis_url: str | None = None,
        names: Names | None = None,
        store: TokenStore | None = None,
    ) -> None:
        if not isinstance(storage, str) or not storage:
            raise ValueError("a spam Filter needs a storage name (e.g. 'run/spamdb')")
        self.storage = storage
        self.config = load_config(config)
        self._names = names
        self._store = store
        if self._store is None and (redis is not None or redis_url is not None):
            conn = redis if redis is not None else _connect(str(redis_url))
            self._store = RedisStore(conn, names or Names(DEFAULT_NAMESPACE), storage)
        self._settings_store: RedisStore | None = None
        self._context_store: RedisStore | None = None  # the worker's, kept while its connection is the same

    def __repr__(self) -> str:
        return f"<spam.Filter {self.storage!r}>"

    # -- where the counts are ----------------------------------------------

    @property
    def store(self) -> TokenStore:
        """The token store this call uses (see the module doc for the order)."""
        if self._store is not None:
            return self._store
        if _memory:
            return MemoryStore.named(self.storage)
        current = context.get()
        if current is not None:
            names = self._names or current.names
            cached = self._context_store
            if cached is None or cached.conn is not current.conn or cached.names != names:
                cached = self._context_store = RedisStore(current.conn, names, self.storage)
            return cached
        if self._settings_store is None:
            from lamson import settings as lamson_settings

            module = lamson_settings.load()
            self._settings_store = RedisStore(_connect(module.redis_url), self._names or names_for(module),
                                              self.storage)
        return self._settings_store

    # -- scoring ------------------------------------------------------------

    def tokens(self, message: Any) -> list[str]:
        """The message's tokens, sorted (what training counts and scoring looks up)."""
        return sorted(tokenize(message, self.config))

    def explain(self, message: Any) -> tuple[float, list[tuple[str, float]]]:
        """The score and the tokens that decided it, strongest first: ``(score, [(token, f), ...])``."""
        tokens = self.tokens(message)
        counts = self.store.counts(tokens)
        return self._score(tokens, counts)

    def _score(self, tokens: list[str], counts: Counts) -> tuple[float, list[tuple[str, float]]]:
        if not counts.nspam or not counts.nham:
            return 0.5, []  # until both kinds were trained there is nothing to compare with
        probability = classifier.token_probability
        config, nspam, nham = self.config, counts.nspam, counts.nham
        probabilities = [
            (token, probability(spam, ham, nspam, nham, config))
            for token, spam, ham in zip(tokens, counts.spam, counts.ham, strict=True)
            if spam or ham
        ]
        chosen = classifier.discriminators(probabilities, config)
        score, _, _ = classifier.fisher_score([f for _, f in chosen])
        return score, chosen

    def score(self, message: Any) -> float:
        """The spam probability of ``message``, 0..1 (0.5 while the filter lacks ham or spam training)."""
        return self.explain(message)[0]

    def classify(self, message: Any) -> str:
        """``"spam"``, ``"ham"`` or ``"unsure"``, by the configured cutoffs."""
        return classifier.label(self.score(message), self.config)

    def filter(self, message: Any) -> str:
        """Classify ``message`` and write ``X-Spam-Classification: LABEL; SCORE`` into it; return the label.

        A MailRequest or an ``email.message.Message`` gets the header
        (replacing one a sender may have forged); raw bytes and str cannot be
        changed in place, so for them only the label is returned.
        """
        score = self.score(message)
        verdict = classifier.label(score, self.config)
        value = f"{verdict}; {score:.4f}"
        if isinstance(message, Message):
            del message[CLASSIFICATION_HEADER]
            message[CLASSIFICATION_HEADER] = value
        elif hasattr(message, "__setitem__") and not isinstance(message, bytes | bytearray | str):
            message[CLASSIFICATION_HEADER] = value
        return verdict

    # -- training -------------------------------------------------------------

    def train_spam(self, message: Any) -> None:
        """Count ``message`` as spam (one atomic update)."""
        self.store.train(self.tokens(message), True)

    def train_ham(self, message: Any) -> None:
        """Count ``message`` as ham (one atomic update)."""
        self.store.train(self.tokens(message), False)

    def untrain_spam(self, message: Any) -> None:
        """Undo :meth:`train_spam` of this message (counts never go below zero)."""
        self.store.untrain(self.tokens(message), True)

    def untrain_ham(self, message: Any) -> None:
        """Undo :meth:`train_ham` of this message (counts never go below zero)."""
        self.store.untrain(self.tokens(message), False)

    def stats(self) -> Stats:
        """Messages trained (``nspam``, ``nham``) and tokens known."""
        return self.store.stats()

    def clear(self) -> None:
        """Forget all training of this storage name."""
        self.store.clear()


def _connect(url: str) -> redis.Redis:
    from lamson.connection import connect

    return connect(url)
