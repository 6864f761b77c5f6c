"""Spell-check every mail template, so a typo never reaches a user's inbox.

Words the dictionary cannot know (product names, state names) go in EXTRA.
"""

import pytest

from lamson import view
from lamson.testing.spelling import assert_spelling

EXTRA = {"lamson", "app", "sample", "templates", "txt", "handlers"}


@pytest.mark.parametrize("template", view.LOADER.list_templates())
def test_template_spelling(template):
    assert_spelling(template, extra_words=EXTRA)
