"""lamson.html: Markdown content in an HTML page template, CSS inlined, with a text alternative."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import jinja2
import markdown  # type: ignore[import-untyped]
import pytest

from lamson import view
from lamson.html import HtmlMail, inline_css, parse_css
from lamson.mail import MailRequest, part_text

TEMPLATES = {"dir": "tests.shared", "module": "data/templates"}


@pytest.fixture(autouse=True)
def loader() -> Iterator[jinja2.Environment]:
    previous = view.LOADER
    yield view.configure(TEMPLATES)
    view.LOADER = previous


class _Styles(HTMLParser):
    """Collects (tag, attributes) of every element, to check what the inliner wrote."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def elements(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Styles()
    parser.feed(page)
    return parser.elements


def style(page: str, tag: str, **attrs: str) -> dict[str, str]:
    """The parsed style of the first ``tag`` element with those attributes."""
    for name, found in elements(page):
        if name == tag and all(found.get(k.rstrip("_")) == v for k, v in attrs.items()):
            declarations = [d.split(":", 1) for d in (found.get("style") or "").split(";") if d.strip()]
            return {k.strip(): v.strip() for k, v in declarations}
    raise AssertionError(f"no <{tag} {attrs}> in {page}")


def test_id_and_class_selectors_are_not_swapped() -> None:
    page = '<div id="note" class="banner">x</div><div id="banner" class="note">y</div>'
    out = inline_css(page, "#banner { color: navy } .banner { color: red }")
    assert style(out, "div", id="note") == {"color": "red"}
    assert style(out, "div", id="banner") == {"color": "navy"}


def test_specificity_order_important_and_own_style() -> None:
    css = """
        p { color: gray; margin: 0 }
        p.note { color: green }
        .note { color: red; padding: 1px }
        #x { color: blue }
        p { color: purple }
        em { color: olive !important }
    """
    out = inline_css('<p class="note other">a</p><p id="x" class="note">b</p><p title="c">c</p>'
                     '<em style="color: black; border: 0">d</em><p title="e" class="note" style="color: white">e</p>', css)
    assert style(out, "p", class_="note other") == {"color": "green", "margin": "0", "padding": "1px"}
    assert style(out, "p", id="x")["color"] == "blue"
    assert style(out, "p", title="c") == {"color": "purple", "margin": "0"}  # later rule of equal specificity wins
    assert style(out, "em") == {"color": "olive", "border": "0"}  # !important beats the element's own
    assert style(out, "p", title="e")["color"] == "white"  # own style beats rules


def test_unsupported_selectors_are_skipped_not_misapplied() -> None:
    rules = parse_css("div p { color: pink } a:hover { color: red } @media print { p { color: x } } "
                      "ul > li { a: b } p, .ok { color: teal }")
    assert [(r.tag, sorted(r.classes)) for r in rules] == [("p", []), (None, ["ok"])]


def test_multiple_classes_and_universal() -> None:
    out = inline_css('<td class="a b">1</td><td class="a">2</td>', "td.a.b { color: red } * { margin: 0 }")
    assert style(out, "td", class_="a b") == {"color": "red", "margin": "0"}
    assert style(out, "td", class_="a") == {"margin": "0"}


def test_script_urls_and_event_handlers_are_removed_and_text_is_kept() -> None:
    page = ('<p onclick="steal()">Tom &amp; Jerry &#169; <b>x</b></p>'
            '<a href="javascript:alert(1)">bad</a><a href="https://example.com/?a=1&amp;b=2">good</a>'
            '<img src=" JavaScript:x"><!-- keep me --><br/>')
    out = inline_css(page, "")
    assert "onclick" not in out and "javascript" not in out.lower()
    assert "Tom &amp; Jerry &#169; <b>x</b>" in out and "<!-- keep me -->" in out
    assert 'href="https://example.com/?a=1&amp;b=2"' in out


def test_css_values_cannot_break_out_of_the_attribute() -> None:
    out = inline_css("<p>x</p>", 'p { color: red; background: url("x") ; font: "><script>; width: 1px }')
    assert style(out, "p") == {"color": "red", "width": "1px"}
    assert "<script>" not in out


def test_render_puts_markdown_into_the_page_with_css_inlined() -> None:
    mail = HtmlMail("mail_style.css", "mail_page.html", {"ink": "#111", "site": "example.com"})
    page = mail.render({"name": "Ann", "title": "Welcome"}, "mail_content.md")
    assert "<strong>example.com</strong>" in page
    assert style(page, "a", href="https://example.com/guide") == {"color": "blue"}
    assert style(page, "div", id="banner") == {"color": "navy", "font-size": "20px"}
    assert style(page, "body") == {"font-family": "'Helvetica', sans-serif", "color": "#111"}
    # <p> from Markdown: the p rule only (the descendant rule "div p" and @media are not applied)
    assert style(page, "p") == {"margin": "0 0 1em 0", "color": "#333"}
    assert style(page, "p", class_="note") == {"margin": "0 0 1em 0", "color": "black", "font-weight": "bold"}
    assert "{{" not in page


def test_variables_cannot_inject_markup_into_the_html() -> None:
    mail = HtmlMail("mail_style.css", "mail_page.html", {"ink": "#111", "site": "example.com"})
    evil = '<img src=x onerror="alert(1)">'
    page = mail.render({"name": evil, "title": evil}, "mail_content.md")
    assert "<img" not in page and "&lt;img" in page


def test_respond_with_body_equal_to_content_has_html_and_a_text_alternative() -> None:
    mail = HtmlMail("mail_style.css", "mail_page.html", {"ink": "#111", "site": "example.com"})
    resp = mail.respond({"name": "Zoë <z>", "title": "Hi"}, "mail_content.md", From="noreply@{{ site }}",
                        To="zoe@example.org", Subject="Welcome, {{ name }}", Body="mail_content.md")
    msg = MailRequest(None, None, None, resp.as_bytes())
    assert msg["subject"] == "Welcome, Zoë <z>" and msg["from"] == "noreply@example.com"
    alternative = msg.to_message()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert msg.body().startswith("Hello Zoë <z>,\n\nWelcome to **example.com**.")  # text: not escaped
    html_part = part_text([p for p in msg.all_parts() if p.get_content_type() == "text/html"][0])
    assert "Hello Zoë &lt;z&gt;," in html_part and 'style="' in html_part


def test_respond_body_may_name_another_template() -> None:
    mail = HtmlMail("mail_style.css", "mail_page.html", {"ink": "#111", "site": "example.com"})
    resp = mail.respond({"name": "Ann", "list": "dev", "title": "t"}, "mail_content.md", Body="welcome.txt",
                        To="a@example.org", From="b@example.com", Subject="s")
    assert resp.Body is not None and resp.Body.startswith("Hello Ann,\n")


def test_wiki_may_be_a_function_or_the_markdown_module_and_defaults_are_not_shared() -> None:
    shout = HtmlMail("mail_style.css", "mail_page.html", {"ink": "red"}, wiki=lambda text: text.upper())
    assert "HELLO ANN" in shout.render({"name": "Ann", "site": "s", "title": ""}, "mail_content.md")
    module = HtmlMail("mail_style.css", "mail_page.html", {"ink": "red"}, wiki=markdown)
    assert "<strong>s</strong>" in module.render({"name": "Ann", "site": "s", "title": ""}, "mail_content.md")
    first, second = HtmlMail("mail_style.css", "mail_page.html"), HtmlMail("mail_style.css", "mail_page.html")
    first.variables["x"] = 1
    assert second.variables == {}
    with pytest.raises(TypeError):
        HtmlMail("mail_style.css", "mail_page.html", wiki="markdown")  # type: ignore[arg-type]


def test_pretty_breaks_lines_after_blocks() -> None:
    mail = HtmlMail("mail_style.css", "mail_page.html", {"ink": "#111", "site": "example.com"})
    flat = mail.render({"name": "Ann", "title": "t"}, "mail_content.md")
    pretty = mail.render({"name": "Ann", "title": "t"}, "mail_content.md", pretty=True)
    assert re.sub(r"\s", "", flat) == re.sub(r"\s", "", pretty)
    assert pretty.count("\n") > flat.count("\n")
    assert "</p>\n" in pretty
