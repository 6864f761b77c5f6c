"""Spam filtering for Lamson applications: a trainable Bayesian filter and ``@spam_filter``.

The classifier is Gary Robinson's (token probabilities with a prior,
combined by Fisher's chi-square method, as in the SpamBayes family); the
counts live in the application's Redis so every router worker shares one
trained filter; the tokenizer reads mail as mail (headers, MIME, HTML,
URLs, encoded words). See docs/spam.md.

    from lamson.spam import Filter, spam_filter

    spam = Filter("run/spamdb")
    spam.train_spam(message)          # or: lamson spam -train-spam Maildir
    spam.classify(message)            # "spam" / "unsure" / "ham"

    @route("(address)@(host)")
    @spam_filter("run/spamdb", None, "run/spam")
    def START(message, address=None, host=None): ...

Handler tests that run without Redis call :func:`use_memory_store` first
(config/testing.py).
"""

from lamson.spam.classifier import HAM, SPAM, UNSURE
from lamson.spam.config import ConfigError, SpamConfig, load_config
from lamson.spam.decorator import spam_filter
from lamson.spam.filter import Filter, memory_store_in_use, use_memory_store
from lamson.spam.store import Counts, MemoryStore, RedisStore, Stats, TokenStore
from lamson.spam.tokenizer import CLASSIFICATION_HEADER, tokenize

__all__ = [
    "CLASSIFICATION_HEADER",
    "HAM",
    "SPAM",
    "UNSURE",
    "ConfigError",
    "Counts",
    "Filter",
    "MemoryStore",
    "RedisStore",
    "SpamConfig",
    "Stats",
    "TokenStore",
    "load_config",
    "memory_store_in_use",
    "spam_filter",
    "tokenize",
    "use_memory_store",
]
