"""Filter: every kind of message in, labels and the header out, config checked."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path

import pytest
import redis

from lamson.mail import MailRequest
from lamson.names import Names
from lamson.spam import CLASSIFICATION_HEADER, ConfigError, Filter, MemoryStore, SpamConfig
from tests.spam.corpus import NEW_HAM, NEW_SPAM


def test_empty_store_scores_one_half_and_is_unsure(redis_conn: redis.Redis) -> None:
    spam = Filter("run/spamdb", redis=redis_conn, names=Names("spamtest"))
    assert spam.score(NEW_SPAM) == 0.5
    assert spam.classify(NEW_SPAM) == "unsure"
    spam.train_spam(NEW_SPAM)  # one kind only: still nothing to compare with
    assert spam.score(NEW_SPAM) == 0.5


def test_trained_filter_tells_new_ham_from_new_spam(trained: Filter) -> None:
    assert trained.score(NEW_SPAM) > 0.9
    assert trained.score(NEW_HAM) < 0.2
    assert trained.classify(NEW_SPAM) == "spam"
    assert trained.classify(NEW_HAM) == "ham"
    score, decided_by = trained.explain(NEW_SPAM)
    assert decided_by and all(abs(f - 0.5) >= 0.1 for _, f in decided_by)


def test_every_message_type_scores_the_same(trained: Filter) -> None:
    as_bytes = trained.score(NEW_SPAM)
    as_str = trained.score(NEW_SPAM.decode())
    as_request = trained.score(MailRequest("127.0.0.1", "winner@prizes.example.biz", "team@example.com", NEW_SPAM))
    as_message = trained.score(message_from_bytes(NEW_SPAM))
    assert as_bytes == as_str == as_request == as_message


def test_filter_writes_the_header_into_requests_and_messages(trained: Filter) -> None:
    request = MailRequest("127.0.0.1", "x@example.org", "team@example.com",
                          NEW_SPAM.replace(b"\r\n\r\n", b"\r\nX-Spam-Classification: ham; 0.0000\r\n\r\n", 1))
    assert trained.filter(request) == "spam"
    (value,) = request.get_all(CLASSIFICATION_HEADER)  # a forged one is replaced, not added to
    label, score = value.split(";")
    assert label == "spam" and 0.9 <= float(score) <= 1.0
    assert b"X-Spam-Classification: spam;" in request.as_bytes()

    message = message_from_bytes(NEW_HAM)
    assert trained.filter(message) == "ham"
    assert message[CLASSIFICATION_HEADER].startswith("ham; 0.")
    assert trained.filter(NEW_HAM) == "ham"  # bytes: the label only


def test_our_own_header_is_not_learnt(trained: Filter) -> None:
    plain = trained.tokens(NEW_HAM)
    marked = NEW_HAM.replace(b"\r\n\r\n", b"\r\nX-Spam-Classification: spam; 0.9900\r\nX-Spam-Status: Yes\r\n\r\n", 1)
    assert trained.tokens(marked) == plain


def test_untrain_undoes_train(trained: Filter) -> None:
    before = trained.stats()
    trained.train_spam(NEW_HAM)
    assert trained.stats().nspam == before.nspam + 1
    trained.untrain_spam(NEW_HAM)
    assert trained.stats() == before


def test_config_from_dict_and_ini(tmp_path: Path) -> None:
    assert Filter("a", {"ham_cutoff": 0.1, "spam_cutoff": 0.95}, store=MemoryStore()).config.spam_cutoff == 0.95
    ini = tmp_path / "spam.ini"
    ini.write_text("[classifier]\nham_cutoff = 0.15\nspam_cutoff = 0.85\n[tokenizer]\nmax_tokens = 500\n")
    config = Filter("a", str(ini), store=MemoryStore()).config
    assert (config.ham_cutoff, config.spam_cutoff, config.max_tokens) == (0.15, 0.85, 500)
    assert Filter("a", {"classifier": {"ham_cutoff": "0.3"}}, store=MemoryStore()).config.ham_cutoff == 0.3
    assert Filter("a", None, store=MemoryStore()).config == SpamConfig()


@pytest.mark.parametrize(("config", "message"), [
    ({"spam_cutof": 0.9}, "unknown spam filter setting.*spam_cutof.*known: ham_cutoff"),
    ({"ham_cutoff": 0.95, "spam_cutoff": 0.9}, "ham_cutoff <= spam_cutoff"),
    ({"max_tokens": "lots"}, "must be a number"),
    ({"unknown_word_strength": 0}, "unknown_word_strength"),
])
def test_bad_config_is_a_clear_error(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Filter("a", config, store=MemoryStore())


def test_bad_ini_is_a_clear_error(tmp_path: Path) -> None:
    ini = tmp_path / "spam.ini"
    ini.write_text("[classifier]\nham_cutoff = 0.2\nspam_threshold = 0.9\n")
    with pytest.raises(ConfigError, match="spam_threshold"):
        Filter("a", str(ini), store=MemoryStore())
    with pytest.raises(ConfigError, match="cannot read"):
        Filter("a", str(tmp_path / "missing.ini"), store=MemoryStore())


def test_storage_name_is_required() -> None:
    with pytest.raises(ValueError, match="storage name"):
        Filter("", store=MemoryStore())
