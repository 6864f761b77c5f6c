"""Spell-check every template, mail and pages, so a typo never reaches a reader."""

import pytest

from lamson import view
from lamson.testing.spelling import assert_spelling

EXTRA = {"osb", "postname", "html", "utf", "px", "em", "pre", "serif", "georgia", "viewport", "ul", "li",
         "div", "meta", "args", "ddd"}


@pytest.mark.parametrize("template", view.LOADER.list_templates(extensions=["txt", "html"]))
def test_template_spelling(template):
    assert_spelling(template, extra_words=EXTRA)
