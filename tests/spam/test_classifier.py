"""The statistics against values worked out by hand from the published formulas."""

from __future__ import annotations

import math

import pytest

from lamson.spam import classifier
from lamson.spam.config import SpamConfig

CONFIG = SpamConfig(unknown_word_strength=0.45, min_prob_strength=0.1)


def test_robinson_probability_pulls_a_once_seen_token_towards_the_prior() -> None:
    # Seen in the only spam, never in the only ham: p = 1, n = 1, f = (0.45*0.5 + 1) / 1.45.
    assert classifier.token_probability(1, 0, 1, 1, CONFIG) == pytest.approx(1.225 / 1.45)
    # The same evidence from 100 messages is much stronger: f = (0.225 + 100) / 100.45.
    assert classifier.token_probability(100, 0, 100, 100, CONFIG) == pytest.approx(100.225 / 100.45)
    # Seen in every message of both kinds: no evidence, exactly 0.5.
    assert classifier.token_probability(10, 20, 10, 20, CONFIG) == pytest.approx(0.5)


def test_default_prior_is_robinsons_suggested_start() -> None:
    # s = 1, x = 0.5: a token seen once in spam only is (0.5 + 1) / 2 = 0.75.
    assert classifier.token_probability(1, 0, 1, 1, SpamConfig()) == pytest.approx(0.75)
    assert classifier.token_probability(0, 3, 5, 5, SpamConfig()) == pytest.approx(0.5 / 4)


def test_robinson_probability_corrects_for_unequal_training() -> None:
    # 10 of 10 spam and 10 of 100 ham: b = 1, g = 0.1, p = 1/1.1, n = 20.
    expected = (0.225 + 20 * (1 / 1.1)) / 20.45
    assert classifier.token_probability(10, 10, 10, 100, CONFIG) == pytest.approx(expected)


def test_chi2_survival_matches_closed_forms() -> None:
    assert classifier.chi2_survival(3.0, 2) == pytest.approx(math.exp(-1.5))  # 2 dof: e^(-x/2)
    assert classifier.chi2_survival(4.0, 4) == pytest.approx(3 * math.exp(-2))  # 4 dof: e^-m (1 + m)
    assert classifier.chi2_survival(0.0, 10) == 1.0
    assert 0.0 <= classifier.chi2_survival(5000.0, 300) < 1e-300 or classifier.chi2_survival(5000.0, 300) == 0.0
    with pytest.raises(ValueError):
        classifier.chi2_survival(1.0, 3)


def test_fisher_of_one_token_is_that_token() -> None:
    # H = 1 - 0.9 = 0.1, S = 1 - 0.1 = 0.9, score = (0.9 - 0.1 + 1) / 2 = 0.9.
    score, s, h = classifier.fisher_score([0.9])
    assert (score, s, h) == (pytest.approx(0.9), pytest.approx(0.9), pytest.approx(0.1))


def test_fisher_of_two_spammy_tokens_by_hand() -> None:
    # m_h = -2 ln 0.9 / ... : Q(-4 ln 0.9, 4) = 0.81 * (1 + 0.2107210313) = 0.9806840354 -> H = 0.0193159646
    #                         Q(-4 ln 0.1, 4) = 0.01 * (1 + 4.6051701860) = 0.0560517019 -> S = 0.9439482981
    score, s, h = classifier.fisher_score([0.9, 0.9])
    assert h == pytest.approx(0.0193159646, abs=1e-9)
    assert s == pytest.approx(0.9439482981, abs=1e-9)
    assert score == pytest.approx((0.9439482981 - 0.0193159646 + 1) / 2, abs=1e-9)


def test_fisher_conflicting_and_missing_evidence_is_the_middle() -> None:
    assert classifier.fisher_score([0.99, 0.01])[0] == pytest.approx(0.5)
    assert classifier.fisher_score([]) == (0.5, 0.0, 0.0)
    strong_both = classifier.fisher_score([0.99] * 20 + [0.01] * 20)
    assert strong_both[0] == pytest.approx(0.5) and strong_both[1] > 0.99 and strong_both[2] > 0.99


def test_discriminators_drop_noise_keep_the_strongest_and_are_deterministic() -> None:
    config = SpamConfig(max_discriminators=3)
    found = classifier.discriminators(
        [("a", 0.55), ("b", 0.97), ("c", 0.02), ("d", 0.61), ("e", 0.9), ("f", 0.01), ("g", 0.03)], config)
    assert found == [("f", 0.01), ("c", 0.02), ("b", 0.97)]  # b and g tie at 0.47: by token text
    assert classifier.discriminators([("x", 0.45), ("y", 0.59)], config) == []


@pytest.mark.parametrize(("score", "expected"), [
    (0.0, "ham"), (0.1999, "ham"), (0.2, "unsure"), (0.5, "unsure"), (0.8999, "unsure"), (0.9, "spam"), (1.0, "spam"),
])
def test_default_cutoffs(score: float, expected: str) -> None:
    assert classifier.label(score, CONFIG) == expected
