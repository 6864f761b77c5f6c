"""lamson.testing.spelling: pyspellchecker on templates and text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lamson import view
from lamson.testing.spelling import assert_spelling, spelling

TEMPLATES = Path(__file__).parent / "data" / "templates"


@pytest.fixture
def loader() -> Iterator[None]:
    previous = view.LOADER
    view.configure({"dir": "tests.shared", "module": "data/templates"})
    yield
    view.LOADER = previous


def test_text_with_typos() -> None:
    assert spelling("We recieved your mesage, thank you.") == ["recieved", "mesage"]


def test_clean_text_and_extra_words() -> None:
    text = "Don't worry: Lamson queues your message. See https://exampel.com/x or write to bob@exampel.com."
    assert spelling(text, extra_words={"lamson"}) == []
    assert spelling(text) == ["Lamson"]


def test_template_syntax_and_html_are_skipped(loader: None) -> None:
    assert spelling("welcome.txt") == []
    assert spelling("welcome.html") == []
    assert spelling("{{ usr_nme }} {% if qqqx %}Hello{% endif %} <p class='xyzzy'>friend</p>") == []


def test_template_by_name_and_by_path(loader: None) -> None:
    assert spelling("misspelled.txt") == ["subscribng", "recieved", "mesage"]
    assert spelling(TEMPLATES / "misspelled.txt") == ["subscribng", "recieved", "mesage"]


def test_assert_helper_names_words_and_suggestions(loader: None) -> None:
    assert_spelling("welcome.txt")
    with pytest.raises(AssertionError, match=r"'recieved' \(did you mean 'received'\?\)"):
        assert_spelling("misspelled.txt")
