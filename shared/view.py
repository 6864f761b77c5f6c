"""Templates for mail: render Jinja2 templates into :class:`~lamson.mail.MailResponse`s.

As in the guide, ``config/boot.py`` assigns a Jinja2 ``Environment`` (or any
object with ``get_template(name).render(dict)``) to :data:`LOADER`;
:func:`configure` does that from ``settings.template_config``.

Header values given to :func:`respond` may use the variables, either as
Jinja2 (``"Re: {{ subject }}"``) or Python ``%`` formatting
(``"%(name)s wrote"``, as the old Lamson did). Whatever a variable contains,
it cannot add a header or a recipient: the result goes through
:func:`lamson.encoding.clean_header` (text headers neutralised, address
headers refused with :class:`~lamson.encoding.HeaderInjectionError`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jinja2
import jinja2.nodes
import jinja2.sandbox

from lamson.mail import MailResponse

#: The template loader; set by ``config/boot.py`` (or :func:`configure`).
LOADER: Any = None

#: Template names that hold HTML and are therefore autoescaped.
HTML_EXTENSIONS = ("html", "htm", "xml")

#: docs/mail.md promises autoescaped HTML templates. A boot file written as the
#: guide shows it (``view.LOADER = jinja2.Environment(loader=...)``) gets
#: Jinja2's default, no autoescaping; with this True, HTML templates of such an
#: Environment are loaded through an autoescaping overlay of it instead, so
#: ``{{ message['subject'] }}`` in a .html template can never become markup.
#: Set it to False only if your HTML templates escape by hand.
HTML_AUTOESCAPE = True

#: Autoescaping overlays of LOADER environments, by id (negative: escape everything),
#: each with the environment it belongs to (so a recycled id is never mistaken).
_overlays: dict[int, tuple[jinja2.Environment, jinja2.Environment]] = {}


def _autoescape_html() -> Any:
    return jinja2.select_autoescape(list(HTML_EXTENSIONS), default_for_string=False)


def configure(template_config: Mapping[str, str]) -> jinja2.Environment:
    """Set :data:`LOADER` from ``{'dir': 'app', 'module': 'templates'}`` and return it.

    HTML templates (``.html``, ``.htm``, ``.xml``) are autoescaped; text templates are not.
    """
    global LOADER
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(template_config["dir"], template_config["module"]),
        autoescape=_autoescape_html(),
    )
    LOADER = env
    return env


def _loader() -> Any:
    if LOADER is None:
        raise RuntimeError(
            "lamson.view.LOADER is not configured: config/boot.py (or config/testing.py) must set it, "
            "e.g. lamson.view.configure(settings.template_config)"
        )
    return LOADER


def _is_html(template: str) -> bool:
    return template.rsplit(".", 1)[-1].lower() in HTML_EXTENSIONS


def _overlay(env: jinja2.Environment, escape_all: bool) -> jinja2.Environment:
    """An overlay of ``env`` (same loader, filters, globals) that autoescapes HTML, or everything."""
    key = -id(env) if escape_all else id(env)
    cached = _overlays.get(key)
    if cached is not None and cached[0] is env:
        return cached[1]
    if len(_overlays) > 8:  # LOADER is replaced now and then (tests): keep no old ones alive
        _overlays.clear()
    overlay = env.overlay(autoescape=True if escape_all else _autoescape_html())
    _overlays[key] = (env, overlay)
    return overlay


def load(template: str) -> Any:
    """The template object named ``template``.

    An HTML template of a Jinja2 Environment that does not autoescape it is
    loaded from an autoescaping overlay (see :data:`HTML_AUTOESCAPE`).
    """
    loader = _loader()
    if (
        HTML_AUTOESCAPE
        and isinstance(loader, jinja2.Environment)
        and _is_html(template)
        and not (loader.autoescape(template) if callable(loader.autoescape) else loader.autoescape)
    ):
        loader = _overlay(loader, escape_all=False)
    return loader.get_template(template)


def template_variables(variables: Mapping[Any, Any]) -> dict[str, Any]:
    """The variables a template can see: the string keys of ``variables``.

    ``respond(locals(), ...)`` is the guide's idiom; called from a method,
    ``locals()`` holds ``self`` (which Jinja2's ``render(**vars)`` would take
    as its own ``self``), and other mappings may hold keys that are no
    identifier at all. Passing one dict positionally and dropping non-string
    keys makes both harmless.
    """
    return {key: value for key, value in dict(variables).items() if isinstance(key, str)}


def render(variables: Mapping[Any, Any], template: str) -> str:
    """Render the template named ``template`` with ``variables``."""
    return str(load(template).render(template_variables(variables)))


def _render_header(value: Any, variables: Mapping[Any, Any]) -> Any:
    """Apply the variables to a header value given to :func:`respond`.

    A ``(display name, address)`` tuple is rendered item by item, so a
    variable in the display name stays a display name whatever it contains.
    """
    if isinstance(value, tuple):
        return tuple(_render_header(item, variables) for item in value)
    if not isinstance(value, str):
        return value
    if "{{" in value or "{%" in value:
        # A header value is a template string, so it must never carry text from a
        # message; if a handler builds one from untrusted text anyway, the sandbox
        # keeps that text from reaching Python objects (no code execution).
        simple = _simple_header(value)
        if simple is not None:
            fast = _substitute(simple, variables)
            if fast is not None:
                return fast
        return _header_template(value).render(template_variables(variables))
    if "%(" in value:
        try:
            return value % template_variables(variables)
        except (KeyError, ValueError, TypeError):
            return value  # a literal '%' in a subject is text, not a crash
    return value


_HEADER_TEMPLATES = jinja2.sandbox.SandboxedEnvironment(autoescape=False)

@functools.lru_cache(maxsize=512)
def _simple_header(source: str) -> tuple[tuple[bool, str], ...] | None:
    """``source`` as Jinja2 parses it, as ``(is a variable, text or name)`` pieces, when it is nothing
    but text and ``{{ name }}`` outputs; None when it uses anything else (filters, attributes,
    literals, blocks) or does not parse."""
    try:
        tree = _HEADER_TEMPLATES.parse(source)
    except jinja2.TemplateSyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], jinja2.nodes.Output):
        return None
    pieces: list[tuple[bool, str]] = []
    for node in tree.body[0].nodes:
        if isinstance(node, jinja2.nodes.TemplateData):
            pieces.append((False, node.data))
        elif isinstance(node, jinja2.nodes.Name) and node.ctx == "load":
            pieces.append((True, node.name))
        else:
            return None
    return tuple(pieces)


def _substitute(pieces: tuple[tuple[bool, str], ...], variables: Mapping[Any, Any]) -> str | None:
    """What Jinja2 renders for such a template: the text, and each variable's ``str()`` (three
    template renders per reply cost more than the rest of building it). None when a name is not
    among the variables: Jinja2's undefined values and global names keep their own rules."""
    out = []
    for is_name, text in pieces:
        if not is_name:
            out.append(text)
            continue
        try:
            if text not in variables:  # (a defaultdict would make one up; Jinja2 sees it undefined)
                return None
            value = variables[text]
        except (KeyError, TypeError):
            return None
        if isinstance(value, jinja2.Undefined):
            return None
        out.append(str(value))
    return "".join(out)


@functools.lru_cache(maxsize=512)
def _header_template(source: str) -> jinja2.Template:
    """Compiled once: handlers pass the same few header templates for every message."""
    return _HEADER_TEMPLATES.from_string(source)


def respond(
    variables: Mapping[Any, Any],
    Body: str | None = None,  # noqa: N803
    Html: str | None = None,  # noqa: N803
    **headers: Any,
) -> MailResponse:
    """A :class:`MailResponse` whose Body/Html are the named templates rendered with ``variables``.

    ``headers`` (``From=``, ``To=``, ``Subject=``, or any other header) may
    use the variables too. Body and Html together give a multipart/alternative.
    """
    if Body is None and Html is None:
        raise TypeError("respond() needs a Body= or Html= template name")
    response = MailResponse()
    set_headers(response, variables, headers)
    if Body is not None:
        response.Body = render(variables, Body)
    if Html is not None:
        response.Html = render(variables, Html)
    return response


#: The RFC 3834 header :func:`respond` (and :meth:`lamson.html.HtmlMail.respond`) add.
AUTO_SUBMITTED = "Auto-Submitted"


def set_headers(response: MailResponse, variables: Mapping[Any, Any], headers: Mapping[str, Any]) -> None:
    """Set ``headers`` on ``response``, each value rendered with ``variables``.

    From, To and Subject come first (the order readers expect); ``Reply_To``
    style keyword names become ``Reply-To``.

    These helpers write automatic answers, so the response gets
    ``Auto-Submitted: auto-replied`` (RFC 3834) unless ``headers`` name
    ``Auto_Submitted`` themselves: a value (``"no"`` for mail a person asked
    for, ``"auto-generated"``) replaces it, None leaves the header out.
    """
    rest = {name.replace("_", "-"): value for name, value in headers.items()}
    for name in ("From", "To", "Subject"):
        if name in rest:
            response[name] = _render_header(rest.pop(name), variables)
    auto = next((name for name in rest if name.lower() == "auto-submitted"), None)
    if auto is None:
        response[AUTO_SUBMITTED] = "auto-replied"
    elif rest[auto] is None:
        del rest[auto]
    for name, value in rest.items():
        response[name] = _render_header(value, variables)


def render_escaped(variables: Mapping[Any, Any], template: str) -> str:
    """Render ``template`` with every variable HTML-escaped, whatever its extension.

    For text that becomes HTML later (a Markdown template in :mod:`lamson.html`):
    the template's own markup stays, what the variables carry cannot add any.
    Needs a Jinja2 :data:`LOADER`; another kind of loader renders unescaped.
    """
    loader = _loader()
    if isinstance(loader, jinja2.Environment):
        escaping = _overlay(loader, escape_all=True)
        return str(escaping.get_template(template).render(template_variables(variables)))
    return render(variables, template)


def attach(
    msg: MailResponse,
    variables: Mapping[Any, Any],
    template: str,
    filename: str | None = None,
    content_type: str | None = None,
    disposition: str | None = None,
) -> None:
    """Attach the rendered ``template`` to ``msg`` (as text, UTF-8)."""
    data = render(variables, template)
    msg.attach(
        filename=filename, content_type=content_type or "text/plain", data=data, disposition=disposition
    )
