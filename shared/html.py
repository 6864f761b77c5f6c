"""HTML mail from Markdown: Lamson 1.x's ``lamson.html.HtmlMail``.

Mail clients ignore ``<style>`` blocks and external style sheets (Gmail
strips them, Outlook half-reads them), so a styled mail must carry its CSS in
``style=""`` attributes on every element. :class:`HtmlMail` lets you write a
style sheet and a page template once, and mail content as Markdown:

    generator = HtmlMail("style.css", "html_mail.html", {"site": "example.com"})
    reply = generator.respond({"name": name}, "welcome.md", Body="welcome.md",
                              From="noreply@example.com", To=message["from"], Subject="Welcome")

``welcome.md`` is rendered with the variables (HTML-escaped), converted to
HTML by Markdown, placed into ``html_mail.html`` as ``{{ content }}``, and the
rules of ``style.css`` are copied onto the elements they select. With
``Body="welcome.md"`` (as in 1.x) the mail also has a plain text alternative,
``welcome.md`` rendered as is (Markdown reads as text); without ``Body`` it is
``text/html`` alone.

The inliner understands what mail styling needs and no more: selectors made
of a tag and/or ``#id`` and/or ``.class`` parts (``p``, ``.note``, ``#top``,
``a.button``, ``td.a.b``, ``*``), comma lists of them, ``!important``, and
CSS specificity (id over class over tag, later rules over earlier ones, the
element's own ``style`` over everything). Rules it cannot apply to a single
element (descendant selectors, pseudo-classes, ``@media``) are skipped; 1.x
got ``#`` and ``.`` backwards, this one does not. Event-handler attributes
and ``javascript:``/``vbscript:`` URLs are removed on the way (Markdown lets
a link through as written).
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from types import ModuleType
from typing import Any, NamedTuple, cast

import jinja2
import markdown
import nh3
from markupsafe import Markup

from lamson import view
from lamson.mail import MailResponse

log = logging.getLogger(__name__)

__all__ = ["CssRule", "HtmlMail", "Rendered", "inline_css", "parse_css", "plain_text_html", "render_markdown",
           "render_markdown_checked", "sanitize", "url_is_safe"]

Wiki = Callable[[str], str] | ModuleType


class CssRule(NamedTuple):
    """One simple selector with its declarations, as the inliner applies it."""

    tag: str | None
    id: str | None
    classes: frozenset[str]
    declarations: tuple[tuple[str, str, bool], ...]  # (property, value, important)
    specificity: tuple[int, int, int]
    order: int

    def matches(self, tag: str, attrs: Mapping[str, str]) -> bool:
        if self.tag is not None and self.tag != tag:
            return False
        if self.id is not None and attrs.get("id") != self.id:
            return False
        return self.classes <= set(attrs.get("class", "").split())


_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_AT_BLOCK = re.compile(r"@[^{;]*(\{(?:[^{}]|\{[^{}]*\})*\}|;)", re.DOTALL)
_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_SIMPLE = re.compile(r"^(?P<tag>[a-zA-Z][a-zA-Z0-9-]*|\*)?(?P<rest>(?:[#.][-_a-zA-Z0-9]+)*)$")


def parse_css(css: str) -> list[CssRule]:
    """The rules of ``css`` the inliner can apply, one per simple selector, in source order."""
    css = _AT_BLOCK.sub("", _COMMENT.sub("", css))
    rules: list[CssRule] = []
    for selectors, body in _RULE.findall(css):
        declarations = _declarations(body)
        if not declarations:
            continue
        for selector in selectors.split(","):
            rule = _rule(selector.strip(), declarations, len(rules))
            if rule is None:
                log.debug("lamson.html: selector %r cannot be inlined; skipped", selector.strip())
            else:
                rules.append(rule)
    return rules


def _rule(selector: str, declarations: tuple[tuple[str, str, bool], ...], order: int) -> CssRule | None:
    found = _SIMPLE.match(selector)
    if not selector or found is None:
        return None
    tag = found.group("tag")
    parts = re.findall(r"([#.])([-_a-zA-Z0-9]+)", found.group("rest"))
    ids = [name for kind, name in parts if kind == "#"]
    classes = frozenset(name for kind, name in parts if kind == ".")
    if len(set(ids)) > 1:
        return None  # "#a#b" selects nothing
    tag_name = None if tag in (None, "*") else tag.lower()
    specificity = (len(ids), len(classes), 0 if tag_name is None else 1)
    return CssRule(tag_name, ids[0] if ids else None, classes, declarations, specificity, order)


def _declarations(body: str) -> tuple[tuple[str, str, bool], ...]:
    """``color: red; margin: 0 !important`` → ((property, value, important), ...); junk dropped."""
    out = []
    for item in body.split(";"):
        name, colon, value = item.partition(":")
        name, value = name.strip().lower(), value.strip()
        if not colon or not name or not value or not re.fullmatch(r"-?[a-z][a-z0-9-]*", name):
            continue
        important = bool(re.search(r"!\s*important\s*$", value, re.IGNORECASE))
        if important:
            value = re.sub(r"\s*!\s*important\s*$", "", value, flags=re.IGNORECASE)
        if any(ch in value for ch in '<>"{}') or "expression(" in value.lower():
            continue  # cannot be written safely into an attribute, or is IE script
        out.append((name, value, important))
    return tuple(out)


def _style_of(rules: list[CssRule], tag: str, attrs: dict[str, str]) -> str | None:
    """The style attribute for one element: matched rules by specificity, its own style on top."""
    chosen: dict[str, tuple[tuple[int, ...], str]] = {}
    matched = sorted((r for r in rules if r.matches(tag, attrs)), key=lambda r: (r.specificity, r.order))
    for rule in matched:
        for name, value, important in rule.declarations:
            rank = (1 if important else 0, 0, *rule.specificity, rule.order)
            if name not in chosen or rank >= chosen[name][0]:
                chosen[name] = (rank, value)
    own = attrs.get("style")
    if own:
        for name, value, important in _declarations(own):
            rank = (1 if important else 0, 1, 0, 0, 0, 0)
            if name not in chosen or rank >= chosen[name][0]:
                chosen[name] = (rank, value)
    if not chosen:
        return None
    return "; ".join(f"{name}: {value}" for name, (_, value) in chosen.items())


_URL_ATTRS = frozenset({"href", "src", "action", "background", "formaction", "xlink:href", "poster"})


def _inline_url_ok(url: str) -> bool:
    """A URL attribute the inliner keeps: :func:`url_is_safe` (read as a browser reads it: character
    references decoded, tabs and other invisible characters dropped), or ``cid:``, which names a part
    of the mail itself (an inline image)."""
    return url_is_safe(url) or url.strip().lower().startswith("cid:")
_BLOCKS = frozenset({"p", "div", "table", "tr", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
                     "head", "body", "html", "blockquote", "pre", "hr", "br", "title", "style", "meta"})


class _Inliner(HTMLParser):
    """Re-writes HTML as it reads it, adding style attributes; everything else passes through."""

    def __init__(self, rules: list[CssRule], pretty: bool) -> None:
        super().__init__(convert_charrefs=False)
        self.rules = rules
        self.pretty = pretty
        self.out: list[str] = []

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]], close: bool) -> None:
        values: dict[str, str] = {}
        kept: list[tuple[str, str | None]] = []
        for name, value in attrs:
            name = name.lower()
            if name.startswith("on"):
                continue  # event handlers: script
            if name in _URL_ATTRS and value is not None and not _inline_url_ok(value):
                continue
            if name not in values:
                values[name] = value or ""
                kept.append((name, value))
        style = _style_of(self.rules, tag, values)
        text = [f"<{tag}"]
        for name, value in kept:
            if name == "style":
                continue
            text.append(f" {name}" if value is None else f' {name}="{html.escape(value, quote=True)}"')
        if style:
            text.append(f' style="{html.escape(style, quote=True)}"')
        text.append(" />" if close else ">")
        self.out.append("".join(text))
        if self.pretty and close and tag in _BLOCKS:
            self.out.append("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, attrs, close=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, attrs, close=True)

    def handle_endtag(self, tag: str) -> None:
        self.out.append(f"</{tag}>")
        if self.pretty and tag in _BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        self.out.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.out.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.out.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.out.append(f"<![{data}]>")


def inline_css(page: str, css: str | list[CssRule], pretty: bool = False) -> str:
    """``page`` with the rules of ``css`` written into each element's ``style`` attribute.

    ``pretty`` puts a line break after block-level tags, so the source reads
    well in a mail client's "show original" (and stays under line limits).
    """
    rules = parse_css(css) if isinstance(css, str) else css
    inliner = _Inliner(rules, pretty)
    inliner.feed(page)
    inliner.close()
    text = "".join(inliner.out)
    if pretty:
        text = re.sub(r"\n{2,}", "\n", text)
    return text


def _wiki_function(wiki: Wiki) -> Callable[[str], str]:
    """1.x passed a function; the markdown module itself is accepted too."""
    if isinstance(wiki, ModuleType):
        function = getattr(wiki, "markdown", None)
        if not callable(function):
            raise TypeError(f"wiki module {wiki.__name__} has no markdown() function")
        return cast("Callable[[str], str]", function)  # a module's markdown(text) -> HTML, found by name
    if not callable(wiki):
        raise TypeError("wiki must be a function turning Markdown (or other markup) text into HTML")
    return wiki


class HtmlMail:
    """Builds HTML mails from a CSS template, a page template and Markdown content templates.

    ``css_template`` and ``html_template`` are template names for
    :mod:`lamson.view` (its LOADER); ``html_template`` places the content with
    ``{{ content }}``. ``variables`` are defaults for every mail (rendered
    into the CSS once, here); ``wiki`` turns content text into HTML (Markdown).

    Lamson 1.x's names are kept: ``template`` (the page template),
    :meth:`load_css` (switch style sheets), ``stylesheet`` (the rules as
    ``(selector, [], "property: value; ...")``) and :meth:`apply_styles`.
    """

    def __init__(
        self,
        css_template: str,
        html_template: str,
        variables: Mapping[str, Any] | None = None,
        wiki: Wiki = markdown.markdown,
    ) -> None:
        self.css_template = css_template
        self.html_template = html_template
        self.variables: dict[str, Any] = dict(variables or {})  # a copy: 1.x shared one default dict
        self.wiki = _wiki_function(wiki)
        self.load_css(css_template, self.variables)

    @property
    def template(self) -> str:
        """The page template's name (1.x's attribute)."""
        return self.html_template

    @template.setter
    def template(self, name: str) -> None:
        self.html_template = name

    def load_css(self, css_template: str, variables: Mapping[Any, Any]) -> None:
        """Render ``css_template`` with ``variables`` and use its rules from now on (as 1.x)."""
        self.css_template = css_template
        self.css = view.render(variables, css_template)
        self.rules = parse_css(self.css)

    @property
    def stylesheet(self) -> list[tuple[str, list[str], str]]:
        """The rules applied, 1.x's shape: ``(selector, descendant path, declarations)``.

        The path is always empty: rules on descendants are not inlined (see
        the module's docstring), so they are not listed either.
        """
        sheet: list[tuple[str, list[str], str]] = []
        for rule in sorted(self.rules, key=lambda r: r.order):
            selector = (rule.tag or "") + (f"#{rule.id}" if rule.id else "")
            selector += "".join(f".{name}" for name in sorted(rule.classes))
            style = "; ".join(f"{name}: {value}" + (" !important" if important else "")
                              for name, value, important in rule.declarations)
            sheet.append((selector or "*", [], style))
        return sheet

    def apply_styles(self, html: str, pretty: bool = False) -> str:
        """``html`` with the style sheet written into each element's ``style`` attribute.

        Nothing else changes (script URLs and event handlers excepted). 1.x
        returned a BeautifulSoup document; this returns the HTML text, what
        ``str()`` of that document gave.
        """
        return inline_css(html, self.rules, pretty=pretty)

    def _variables(self, variables: Mapping[Any, Any]) -> dict[str, Any]:
        return {**self.variables, **view.template_variables(variables)}

    def render(self, variables: Mapping[Any, Any], content_template: str, pretty: bool = False) -> str:
        """The finished HTML page: content rendered, turned into HTML, placed and styled inline."""
        merged = self._variables(variables)
        content = self.wiki(view.render_escaped(merged, content_template))
        page = view.render({**merged, "content": Markup(content)}, self.html_template)
        return self.apply_styles(page, pretty=pretty)

    def respond(self, variables: Mapping[Any, Any], content: str, **kwd: Any) -> MailResponse:
        """A MailResponse with the rendered HTML, and a text part when ``Body=`` asks for one.

        As in 1.x: without ``Body`` the mail is ``text/html`` alone;
        ``Body=content`` (the content template's own name) adds the content
        rendered as is as the plain text alternative (Markdown reads as text).
        Any other ``Body`` is a template name, or else the text itself
        (``%(name)s`` filled in, as 1.x did). Other keywords are headers,
        rendered with the variables as in :func:`lamson.view.respond`.
        """
        if not content:
            raise ValueError("HtmlMail.respond needs a content template")
        merged = self._variables(variables)
        body = kwd.pop("Body", None)
        kwd.pop("Html", None)
        response = MailResponse()
        view.set_headers(response, merged, kwd)
        if body is not None:
            response.Body = view.render(merged, content) if body == content else _body_text(body, merged)
        response.Html = self.render(merged, content)
        return response


def _body_text(body: str, variables: Mapping[Any, Any]) -> str:
    """``Body=`` of :meth:`HtmlMail.respond`: a template when the loader has one by that name, else text."""
    try:
        return view.render(variables, body)
    except jinja2.TemplateNotFound:
        pass
    if "%(" not in body:
        return body
    try:
        return body % view.template_variables(variables)
    except (KeyError, ValueError, TypeError):
        return body  # a literal '%' is text


# -- Markdown from strangers ------------------------------------------------------------------------------
#
# HtmlMail renders the application's own templates. Text a stranger wrote (a blog post, a comment) needs
# more: Python-Markdown passes raw HTML through, keeps any link target, and some inputs make it quadratic
# (issue 21, findings 2 and 7; docs/security.md, "Applications acting on mail from strangers").

#: Tags Markdown produces that a reader's browser cannot run; anything else is dropped (its text kept).
SAFE_TAGS = frozenset({"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "code", "pre",
                       "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th",
                       "td", "del", "sup", "sub", "dl", "dt", "dd", "abbr"})
#: Attributes kept, per tag: no style (CSS can fetch and, in old browsers, run), no class, no on*.
SAFE_ATTRIBUTES: Mapping[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}), "img": frozenset({"src", "alt", "title"}), "abbr": frozenset({"title"}),
    "th": frozenset({"align"}), "td": frozenset({"align"}), "ol": frozenset({"start"}),
}
#: URL schemes a link or image may use; a relative URL (no scheme, not ``//host``) is fine too.
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
#: What every link says about itself: the page does not vouch for it, and the target gets no opener.
LINK_REL = "nofollow noopener"
#: Text longer than this (characters) is shown as plain text, not rendered as Markdown.
MARKDOWN_LIMIT = 100_000
#: CPU seconds Markdown may spend on one text; past it the text is shown as plain text.
MARKDOWN_BUDGET = 0.25

_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.IGNORECASE)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\xa0\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def url_is_safe(url: str) -> bool:
    """True for http(s)/mailto and same-site relative URLs, as a browser would read ``url``.

    ``url`` is an attribute's value with character references already decoded.
    Browsers drop tabs, newlines and other invisible characters from a URL and
    read ``\\`` as ``/``, so ``java<TAB>script:`` is a script and ``/\\evil.example``
    is another site: both are judged here after the same clean-up.
    """
    cleaned = _INVISIBLE.sub("", html.unescape(url)).replace("\\", "/")
    scheme = _SCHEME.match(cleaned)
    if scheme is not None:
        return scheme.group(1).lower() in SAFE_SCHEMES
    return not cleaned.startswith("//") and ":" not in cleaned.partition("/")[0]


def _keep_attribute(tag: str, name: str, value: str) -> str | None:
    """nh3's attribute filter: URL attributes that a browser would read as script or off-site go."""
    if name in ("href", "src") and not url_is_safe(value):
        return None
    return value


def sanitize(fragment: str) -> str:
    """``fragment`` with only :data:`SAFE_TAGS`, :data:`SAFE_ATTRIBUTES` and safe URLs left.

    nh3 (the ammonia sanitiser) parses the fragment as a browser does, so
    character references, broken tags and odd nesting cannot hide anything from
    the allow list; ``<script>``, ``<style>`` and the like go with their content.
    """
    return nh3.clean(fragment, tags=set(SAFE_TAGS), clean_content_tags={"script", "style"},
                     attributes={tag: set(names) for tag, names in SAFE_ATTRIBUTES.items()},
                     attribute_filter=_keep_attribute, url_schemes=set(SAFE_SCHEMES), link_rel=LINK_REL,
                     strip_comments=True)


def plain_text_html(text: str) -> str:
    """``text`` as escaped paragraphs (blank lines separate them, line breaks kept): linear, runs nothing."""
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]
    return "\n".join("<p>" + html.escape(p).replace("\n", "<br>\n") + "</p>" for p in paragraphs)


class _OverBudget(Exception):
    """Markdown spent its CPU budget on one text."""


def _budgeted(method: Callable[..., Any], deadline: float) -> Callable[..., Any]:
    """``method`` that first checks the thread's CPU clock against ``deadline``."""
    def call(*args: Any, **kwargs: Any) -> Any:
        if time.thread_time() > deadline:
            raise _OverBudget
        return method(*args, **kwargs)
    return call


def _markdown(deadline: float, raw_html: bool) -> markdown.Markdown:
    """A Markdown converter whose every block step and inline match checks the CPU deadline.

    Python-Markdown's slow inputs (link targets scanned to the end of the
    paragraph for each ``[a](``, dense inline markup, deep lists) are slow as
    many steps, each at most one paragraph long; checking before each step
    bounds the whole conversion to the budget plus one step.
    """
    md = markdown.Markdown(extensions=["fenced_code", "tables"], output_format="html",
                           extension_configs={"tables": {"use_align_attribute": True}})
    if not raw_html:
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
    for processor in md.parser.blockprocessors:
        processor.run = _budgeted(processor.run, deadline)
    for pattern in md.inlinePatterns:
        pattern.handleMatch = _budgeted(pattern.handleMatch, deadline)
        for scanner in ("getLink", "getText"):
            if hasattr(pattern, scanner):
                setattr(pattern, scanner, _budgeted(getattr(pattern, scanner), deadline))
    for processor in (*md.preprocessors, *md.treeprocessors, *md.postprocessors):
        processor.run = _budgeted(processor.run, deadline)
    return md


class Rendered(NamedTuple):
    """What :func:`render_markdown_checked` made of a text."""

    html: str
    #: Why the text is shown as plain text ("" when it was rendered as Markdown).
    plain_reason: str


def render_markdown_checked(text: str, *, raw_html: bool = False, limit: int = MARKDOWN_LIMIT,
                            budget: float = MARKDOWN_BUDGET) -> Rendered:
    """Markdown a stranger wrote as HTML that cannot run in a reader's browser, in bounded time.

    Raw HTML in the text is shown as text unless ``raw_html`` (it is sanitised
    either way). A text over ``limit`` characters, or one Markdown cannot
    convert within ``budget`` CPU seconds, is shown as escaped plain text
    instead, with the reason; so is one deep enough to exhaust the recursion limit.
    """
    if len(text) > limit:
        return Rendered(plain_text_html(text), f"longer than {limit} characters")
    try:
        converted = _markdown(time.thread_time() + budget, raw_html).convert(text)
    except _OverBudget:
        return Rendered(plain_text_html(text), f"Markdown took more than {budget} s of CPU")
    except RecursionError:
        return Rendered(plain_text_html(text), "nested too deeply for Markdown")
    return Rendered(sanitize(converted), "")


def render_markdown(text: str, **options: Any) -> str:
    """The HTML of :func:`render_markdown_checked`, for callers that do not need the reason."""
    rendered = render_markdown_checked(text, **options)
    if rendered.plain_reason:
        log.warning("lamson.html: Markdown text of %d characters shown as plain text: %s", len(text),
                    rendered.plain_reason)
    return rendered.html
