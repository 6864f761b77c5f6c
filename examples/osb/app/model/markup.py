"""Markdown to HTML for post pages, with nothing a reader's browser would run.

Python-Markdown passes raw HTML through and keeps any link target, so a post
could carry ``<script>`` or ``[x](javascript:...)``. Here raw HTML is treated
as text (escaped) and links or images whose target is not http, https, mailto
or a relative path lose it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import markdown
from markdown.treeprocessors import Treeprocessor

#: URL schemes a link or image may use; no scheme (a relative link) is fine too.
SAFE_SCHEMES = {"http", "https", "mailto"}


def safe_url(url: str) -> bool:
    """True for http(s)/mailto and relative URLs; False for javascript:, data:, vbscript: and the like."""
    cleaned = "".join(ch for ch in url if ch.isprintable() and not ch.isspace())
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return False
    return scheme == "" and not cleaned.startswith("//") or scheme in SAFE_SCHEMES


class _DropUnsafeUrls(Treeprocessor):
    def run(self, root: ET.Element) -> None:
        for element in root.iter():
            for attribute in ("href", "src"):
                value = element.get(attribute)
                if value is not None and not safe_url(value):
                    del element.attrib[attribute]


def render_markdown(text: str) -> str:
    """The HTML of a Markdown post body: raw HTML escaped, unsafe link targets dropped."""
    md = markdown.Markdown(extensions=["fenced_code", "tables"], output_format="html")
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    md.treeprocessors.register(_DropUnsafeUrls(md), "osb_safe_urls", 0)
    return md.convert(text)
