"""The filter's settings: cutoffs, the classifier's prior, the tokenizer's limits.

A :class:`SpamConfig` comes from nothing (the defaults), a dict, or an INI
file (Lamson 1.x passed a SpamBayes INI path), e.g.::

    [classifier]
    ham_cutoff = 0.20
    spam_cutoff = 0.90

Keys may sit in any section (``[classifier]``, ``[tokenizer]``) or, in a
dict, at the top level. An unknown key is an error naming the known ones:
a misspelt cutoff silently left at its default would be worse than no filter.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A spam filter configuration that names an unknown key or an impossible value."""


@dataclass(frozen=True)
class SpamConfig:
    """Every tunable number of the filter, with the defaults docs/spam.md explains."""

    #: Scores below this are ham, at or above ``spam_cutoff`` spam, between them unsure.
    ham_cutoff: float = 0.20
    spam_cutoff: float = 0.90
    #: Robinson's s: how many messages' worth of weight the prior x has against a token's own counts
    #: (1, Robinson's suggested start; chosen over 0.45 on a validation split, see docs/spam.md).
    unknown_word_strength: float = 1.0
    #: Robinson's x: the probability assumed for a token never seen.
    unknown_word_prob: float = 0.5
    #: At most this many tokens (the most extreme) enter Fisher's combining.
    max_discriminators: int = 150
    #: Tokens whose probability is within this distance of 0.5 are ignored as noise.
    min_prob_strength: float = 0.2
    #: Words shorter than this are dropped, longer than ``max_word_length`` summarised as "skip:".
    min_word_length: int = 3
    max_word_length: int = 12
    #: Bounded work per message: raw bytes parsed, decoded text read, MIME parts visited, tokens kept.
    max_message_bytes: int = 512 * 1024
    max_text_chars: int = 100_000
    max_parts: int = 64
    max_tokens: int = 3000

    def __post_init__(self) -> None:
        if not 0.0 <= self.ham_cutoff <= self.spam_cutoff <= 1.0:
            raise ConfigError(
                f"need 0 <= ham_cutoff <= spam_cutoff <= 1, got ham_cutoff={self.ham_cutoff} "
                f"spam_cutoff={self.spam_cutoff}"
            )
        if self.unknown_word_strength <= 0:
            raise ConfigError("unknown_word_strength must be > 0 (it keeps probabilities away from 0 and 1)")
        if not 0.0 < self.unknown_word_prob < 1.0:
            raise ConfigError("unknown_word_prob must be strictly between 0 and 1")
        if not 0.0 <= self.min_prob_strength < 0.5:
            raise ConfigError("min_prob_strength must be in [0, 0.5)")
        for name in ("max_discriminators", "min_word_length", "max_word_length", "max_message_bytes",
                     "max_text_chars", "max_parts", "max_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.min_word_length > self.max_word_length:
            raise ConfigError("min_word_length must not exceed max_word_length")


KNOWN_KEYS = tuple(field.name for field in dataclasses.fields(SpamConfig))


def load_config(config: SpamConfig | dict[str, Any] | str | os.PathLike[str] | None) -> SpamConfig:
    """A SpamConfig from None (defaults), a SpamConfig, a dict, or the path of an INI file."""
    if config is None:
        return SpamConfig()
    if isinstance(config, SpamConfig):
        return config
    if isinstance(config, dict):
        return _from_values(_flatten(config), "config dict")
    if isinstance(config, str | os.PathLike):
        return _from_values(_read_ini(os.fspath(config)), os.fspath(config))
    raise ConfigError(f"spam filter config must be None, a dict or an INI file path, not {type(config).__name__}")


def _flatten(values: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys, plus the keys of section dicts (``{"classifier": {...}}``)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _read_ini(path: str) -> dict[str, Any]:
    parser = configparser.ConfigParser()
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read spam filter config {path}: {exc.strerror or exc}") from None
    except configparser.Error as exc:
        raise ConfigError(f"bad spam filter config {path}: {exc}") from None
    values: dict[str, Any] = {}
    for section in parser.sections():
        values.update(parser[section])
    return values


def _from_values(values: dict[str, Any], where: str) -> SpamConfig:
    unknown = sorted(set(values) - set(KNOWN_KEYS))
    if unknown:
        raise ConfigError(f"unknown spam filter setting(s) {', '.join(unknown)} in {where}; "
                          f"known: {', '.join(KNOWN_KEYS)}")
    converted: dict[str, Any] = {}
    types = {field.name: field.type for field in dataclasses.fields(SpamConfig)}
    for key, value in values.items():
        kind = int if types[key] in (int, "int") else float
        try:
            converted[key] = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"spam filter setting {key} in {where} must be a number, not {value!r}") from None
    return SpamConfig(**converted)
