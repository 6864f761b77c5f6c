"""Markdown to HTML for post pages, with nothing a reader's browser would run, in bounded time.

The work is lamson.html's (docs/security.md, "Applications acting on mail
from strangers"): raw HTML in a post is shown as text, the rendered HTML goes
through an allow-list sanitiser (nh3: a few tags, http/https/mailto and
same-site links only, ``rel="nofollow noopener"``), and a post Markdown
cannot convert within a quarter of a CPU second, or longer than 100,000
characters, is shown as escaped plain text instead (an 80 KB post of ``[a](``
took 158 s before: issue 21, finding 7).
"""

from __future__ import annotations

from lamson.html import render_markdown_checked

__all__ = ["render_markdown"]


def render_markdown(text: str) -> str:
    """The HTML of a Markdown post body: sanitised, or escaped plain text when Markdown would be too slow."""
    rendered = render_markdown_checked(text)
    if rendered.plain_reason:
        return f'<p class="plain">This post is shown as plain text: {rendered.plain_reason}.</p>\n' + rendered.html
    return rendered.html
