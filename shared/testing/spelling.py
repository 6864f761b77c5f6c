"""Spell-check templates and text in unit tests, with pyspellchecker.

The guide asked for something easier than PyEnchant: pyspellchecker is pure
Python with its dictionaries included, so there is nothing to install or point
at. Template syntax, URLs, addresses and HTML tags are skipped, so a template
can be checked as it is::

    from lamson.testing.spelling import assert_spelling

    def test_welcome_template_spelling():
        assert_spelling("welcome.txt", extra_words={"lamson"})

Lamson 1.x tests call ``lamson.testing.spelling(file_name, contents)``, which
answers True or False and prints what is wrong: calling this module does that
(:func:`spelled_right`), while ``from lamson.testing.spelling import spelling``
keeps returning the list of misspelled words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from lamson.testing.callable_module import make_callable

if TYPE_CHECKING:
    from spellchecker import SpellChecker

__all__ = ["assert_spelling", "spelled_right", "spelling"]

_SKIP = re.compile(
    r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}"  # Jinja2 expressions, statements, comments
    r"|\$\{.*?\}|<%.*?%>"  # Mako
    r"|<[^>\n]*>"  # HTML tags and <addresses>
    r"|\b(?:https?|ftp|mailto):\S+|\bwww\.\S+"  # URLs
    r"|\S+@\S+"  # addresses
    r"|&\w+;",  # HTML entities
    re.DOTALL,
)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def _language(language: str) -> str:
    """pyspellchecker's name for a language: 1.x's PyEnchant tags (``en_US``) become ``en``."""
    return language.replace("-", "_").split("_", 1)[0].lower()


@functools.lru_cache(maxsize=4)
def _checker(language: str) -> SpellChecker:
    from spellchecker import SpellChecker

    return SpellChecker(language=language)


def _source(text_or_template: str | Path) -> str:
    """The text to check: a file, a template known to ``lamson.view.LOADER``, or the text itself."""
    if isinstance(text_or_template, Path):
        return text_or_template.read_text(encoding="utf-8")
    text = text_or_template
    if text and not any(ch.isspace() for ch in text):
        from lamson import view

        loader = getattr(view.LOADER, "loader", None)
        if loader is not None:
            try:
                # LOADER is whatever the application set (Any); get_source's first item is the source.
                return cast(str, loader.get_source(view.LOADER, text)[0])
            except Exception:  # noqa: BLE001 - not a template name: check it as text
                pass
    return text


def words(text: str) -> list[str]:
    """The words that get checked: template code, URLs, addresses and tags removed."""
    return _WORD.findall(_SKIP.sub(" ", text))


def spelling(
    text_or_template: str | Path,
    extra_words: Iterable[str] = (),
    language: str = "en",
) -> list[str]:
    """The misspelled words of a text, template name or file, in order of first appearance.

    ``extra_words`` are accepted too (product names, jargon); case does not matter.
    A word written in capitals only (an acronym) is not checked.
    """
    return misspelled(_source(text_or_template), extra_words, language)


def misspelled(text: str, extra_words: Iterable[str] = (), language: str = "en") -> list[str]:
    """The misspelled words of ``text`` itself (never looked up as a template), in order of first appearance."""
    checker = _checker(_language(language))
    allowed = {w.lower() for w in extra_words}
    found: list[str] = []
    seen: set[str] = set()
    for word in words(text):
        key = word.lower().replace("’", "'")
        if key in seen or key in allowed or (word.isupper() and len(word) > 1) or len(word) == 1:
            continue
        seen.add(key)
        if checker.unknown([key]):
            found.append(word)
    return found


def assert_spelling(
    text_or_template: str | Path,
    extra_words: Iterable[str] = (),
    language: str = "en",
) -> None:
    """Fail (AssertionError) listing each misspelled word with a suggested correction."""
    wrong = spelling(text_or_template, extra_words=extra_words, language=language)
    if wrong:
        checker = _checker(_language(language))
        hints = ", ".join(f"{w!r} (did you mean {checker.correction(w.lower())!r}?)" for w in wrong)
        raise AssertionError(f"misspelled in {str(text_or_template)[:60]!r}: {hints}")


def spelled_right(file_name: str, contents: str, language: str = "en_US", extra_words: Iterable[str] = ()) -> bool:
    """Lamson 1.x's ``spelling(file_name, contents)``: True when ``contents`` has no misspelled word.

    ``contents`` is the text to check (typically a rendered template);
    ``file_name`` only names it in what is printed, one line per misspelled
    word with its context, so a failing ``assert spelling(...)`` shows why.
    ``language`` may be a PyEnchant tag such as ``en_US``.
    """
    wrong = misspelled(contents, extra_words, language)
    for word in wrong:
        at = contents.find(word)
        context = contents[max(at - 20, 0):at + len(word) + 20].replace("\n", " ")
        print(f"{file_name}: {word!r} in ...{context}...")
    if wrong:
        print(f"{len(wrong)} spelling error(s) in {file_name}")
    return not wrong


make_callable(__name__, spelled_right)
