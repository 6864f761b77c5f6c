"""The statistics: Robinson's token probabilities, combined with Fisher's method.

Gary Robinson, "A Statistical Approach to the Spam Problem" (Linux Journal,
2003). For a token seen in ``spam`` of ``nspam`` spam messages and ``ham``
of ``nham`` ham messages:

* ``p = (spam/nspam) / (spam/nspam + ham/nham)``: the chance a message
  containing it is spam, corrected for how many of each class were trained;
* ``f = (s*x + n*p) / (s + n)`` with ``n = spam + ham``: ``p`` pulled towards
  the prior ``x`` (0.5) with a strength ``s`` worth that many messages, so a
  token seen once does not decide anything and no ``f`` is ever 0 or 1.

Fisher's method then asks, of the ``N`` most extreme ``f`` values, "how
unlikely are these if they were random?" twice: ``H = 1 - Q(-2 Σ ln f, 2N)``
(near 1 when the ``f`` are low: hammy) and ``S = 1 - Q(-2 Σ ln(1-f), 2N)``
(near 1 when they are high: spammy), where ``Q`` is the chi-square survival
function. The score ``(S - H + 1) / 2`` is near 1 for spam, near 0 for ham,
and near 0.5 both when there is no evidence and when the evidence conflicts
(``S`` and ``H`` both high): that middle is what "unsure" means.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from lamson.spam.config import SpamConfig

SPAM = "spam"
HAM = "ham"
UNSURE = "unsure"


def token_probability(spam: int, ham: int, nspam: int, nham: int, config: SpamConfig) -> float:
    """Robinson's ``f(w)``: the spam probability of one token, pulled towards the prior."""
    spam_ratio = spam / nspam if nspam else 0.0
    ham_ratio = ham / nham if nham else 0.0
    total = spam_ratio + ham_ratio
    p = spam_ratio / total if total else config.unknown_word_prob
    n = spam + ham
    s, x = config.unknown_word_strength, config.unknown_word_prob
    return (s * x + n * p) / (s + n)


def chi2_survival(chi2: float, degrees: int) -> float:
    """``Q(chi2, degrees)``: the chance a chi-square variable with even ``degrees`` exceeds ``chi2``.

    For even degrees of freedom ``2k`` it is ``e^-m * Σ_{i<k} m^i / i!`` with
    ``m = chi2/2``; each term is computed in log space so a large ``chi2``
    (hundreds of extreme tokens) neither overflows nor underflows midway.
    """
    if degrees <= 0 or degrees % 2:
        raise ValueError("degrees of freedom must be a positive even number")
    if chi2 <= 0:
        return 1.0
    m = chi2 / 2.0
    log_m = math.log(m)
    total = 0.0
    for i in range(degrees // 2):
        total += math.exp(-m + i * log_m - math.lgamma(i + 1))
    return min(total, 1.0)


def fisher_score(probabilities: Sequence[float]) -> tuple[float, float, float]:
    """``(score, S, H)`` for the chosen token probabilities; ``(0.5, 0, 0)`` when there are none."""
    if not probabilities:
        return 0.5, 0.0, 0.0
    degrees = 2 * len(probabilities)
    ham_evidence = -2.0 * sum(math.log(f) for f in probabilities)
    spam_evidence = -2.0 * sum(math.log1p(-f) for f in probabilities)
    h = 1.0 - chi2_survival(ham_evidence, degrees)
    s = 1.0 - chi2_survival(spam_evidence, degrees)
    return (s - h + 1.0) / 2.0, s, h


def discriminators(probabilities: Iterable[tuple[str, float]], config: SpamConfig) -> list[tuple[str, float]]:
    """The tokens that count: at least ``min_prob_strength`` from 0.5, the ``max_discriminators`` strongest.

    Ties are broken by the token text so a score never depends on set order.
    """
    strong = [(token, f) for token, f in probabilities if abs(f - 0.5) >= config.min_prob_strength]
    strong.sort(key=lambda item: (-abs(item[1] - 0.5), item[0]))
    return strong[: config.max_discriminators]


def label(score: float, config: SpamConfig) -> str:
    """``"ham"`` below the ham cutoff, ``"spam"`` at or above the spam cutoff, else ``"unsure"``."""
    if score < config.ham_cutoff:
        return HAM
    if score >= config.spam_cutoff:
        return SPAM
    return UNSURE
