"""lamson.view: Jinja2 templates into MailResponses, with no header injection possible."""

from __future__ import annotations

import string
from collections.abc import Iterator

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamson import view
from lamson.encoding import HeaderInjectionError
from lamson.mail import MailRequest, MailResponse, part_text

TEMPLATES = {"dir": "tests.shared", "module": "data/templates"}


@pytest.fixture(autouse=True)
def loader() -> Iterator[jinja2.Environment]:
    previous = view.LOADER
    yield view.configure(TEMPLATES)
    view.LOADER = previous


def test_configure_builds_the_guides_package_loader() -> None:
    assert isinstance(view.LOADER, jinja2.Environment)
    assert isinstance(view.LOADER.loader, jinja2.PackageLoader)


def test_unconfigured_loader_is_a_clear_error() -> None:
    view.LOADER = None
    with pytest.raises(RuntimeError, match="LOADER is not configured"):
        view.render({}, "welcome.txt")


def test_render() -> None:
    text = view.render({"name": "Zoë", "list": "dev"}, "welcome.txt")
    assert text.startswith("Hello Zoë,")


def test_respond_text_and_html_make_alternative_with_text_first() -> None:
    variables = {"name": "<Zoë>", "list": "dev", "who": "Zoë"}
    resp = view.respond(
        variables,
        Body="welcome.txt",
        Html="welcome.html",
        From="noreply@example.com",
        To="{{ who }} <zoe@example.com>",
        Subject="Welcome to %(list)s, {{ '' }}%(who)s" if False else "Welcome to {{ list }}",
    )
    msg = MailRequest(None, None, None, resp.as_bytes())
    assert msg["subject"] == "Welcome to dev"
    assert msg.addresses("to") == [("Zoë", "zoe@example.com")]
    parts = msg.to_message().get_body(("related", "html", "plain"))
    assert parts is not None
    alternative = [p for p in msg.to_message().walk() if p.get_content_type() == "multipart/alternative"]
    assert len(alternative) == 1
    kinds = [p.get_content_type() for p in alternative[0].get_payload()]  # type: ignore[union-attr]
    assert kinds == ["text/plain", "text/html"]
    assert "Hello <Zoë>," in msg.body()
    html = part_text([p for p in msg.all_parts() if p.get_content_type() == "text/html"][0])
    assert "&lt;Zoë&gt;" in html  # HTML templates are autoescaped, text ones are not


def test_respond_percent_formatting_like_old_lamson() -> None:
    resp = view.respond(
        {"name": "Ann", "list": "x"}, Body="welcome.txt", From="a@b.c", To="d@e.f", Subject="%(name)s joined"
    )
    assert resp["Subject"] == "Ann joined"


def test_respond_needs_a_template() -> None:
    with pytest.raises(TypeError):
        view.respond({}, To="a@b.c")


def test_attach_rendered_template() -> None:
    resp = MailResponse(To="a@b.c", From="d@e.f", Subject="s", Body="see attached")
    view.attach(resp, {"name": "Ann", "list": "x"}, "welcome.txt", filename="welcome.txt")
    msg = MailRequest(None, None, None, bytes(resp))
    [att] = msg.attachments()
    assert att.filename == "welcome.txt" and att.content_type == "text/plain"
    assert att.data.decode().startswith("Hello Ann,")


CONTROL = [chr(c) for c in range(0x20)] + ["\x7f", "\x85", "\u2028", "\u2029"]
evil = st.text(alphabet=st.sampled_from(CONTROL + list(string.ascii_letters + ": ")), max_size=40)
#: Address syntax too: safe only in the (display name, address) tuple form.
wicked = st.text(alphabet=st.sampled_from(CONTROL + list(string.ascii_letters + ':<>@,;"\\() ')), max_size=40)

EXPECTED = [
    "from",
    "to",
    "subject",
    "auto-submitted",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
]


@settings(max_examples=200, deadline=None)
@given(subject=evil, name=evil)
def test_template_variables_never_add_a_header(subject: str, name: str) -> None:
    variables = {"subject": subject, "name": name, "list": "x"}
    try:
        resp = view.respond(
            variables,
            Body="welcome.txt",
            From="service@example.com",
            To="{{ name }} <victim@example.com>",
            Subject="Re: {{ subject }}",
        )
        raw = resp.as_bytes()
    except HeaderInjectionError:
        # Refused: only allowed when the To value really carried a control character.
        assert any(ch in name for ch in CONTROL)
        return
    msg = MailRequest(None, None, None, raw)
    assert sorted(k.lower() for k in msg.keys()) == sorted(EXPECTED)
    assert [addr for _, addr in msg.addresses("to")] == ["victim@example.com"]
    assert msg.addresses("from") == [("", "service@example.com")]
    assert resp.recipients() == ["victim@example.com"]


@settings(max_examples=200, deadline=None)
@given(subject=wicked, name=wicked)
def test_display_name_tuple_never_adds_a_recipient(subject: str, name: str) -> None:
    try:
        resp = view.respond(
            {"subject": subject, "name": name, "list": "x"},
            Body="welcome.txt",
            From="service@example.com",
            To=("{{ name }}", "victim@example.com"),
            Subject="Re: {{ subject }}",
        )
        raw = resp.as_bytes()
    except HeaderInjectionError:
        assert any(ch in name for ch in CONTROL)
        return
    msg = MailRequest(None, None, None, raw)
    assert sorted(k.lower() for k in msg.keys()) == sorted(EXPECTED)
    assert [addr for _, addr in msg.addresses("to")] == ["victim@example.com"]
    assert resp.recipients() == ["victim@example.com"]


def test_header_values_cannot_run_template_code_from_a_message() -> None:
    """A subject from the Internet goes in as a variable: it is text, never a template."""
    import jinja2.exceptions

    hostile = "{{ 7*7 }} {{ ''.__class__.__mro__ }} %(secret)s 100%"
    env = jinja2.Environment(loader=jinja2.DictLoader({"b.txt": "body"}))
    old = view.LOADER
    view.LOADER = env
    try:
        reply = view.respond({"subject": hostile}, Body="b.txt", Subject="Re: {{ subject }}")
        assert reply["Subject"] == "Re: " + hostile
        # A handler that wrongly builds the template from message text gets a sandbox, not Python objects.
        with pytest.raises(jinja2.exceptions.SecurityError):
            view.respond({}, Body="b.txt", Subject="{{ ''.__class__.__mro__[1].__subclasses__() }}")
        # A stray '%' in a literal value is text, not a crash.
        assert view.respond({}, Body="b.txt", Subject="100%(done")["Subject"] == "100%(done"
    finally:
        view.LOADER = old


class _Handler:
    """A handler written as a class: its methods call respond(locals(), ...)."""

    def reply(self, name: str) -> MailResponse:
        list = "dev"  # noqa: A001 - the template's variable name
        return view.respond(locals(), Body="welcome.txt", From="noreply@example.com",
                            To="{{ name }}@example.com", Subject="%(list)s for %(name)s")


def test_respond_locals_from_a_method() -> None:
    resp = _Handler().reply("ann")
    assert resp["Subject"] == "dev for ann" and resp["To"] == "ann@example.com"
    assert resp.Body is not None and resp.Body.startswith("Hello ann,")


def test_non_string_keys_and_odd_values_do_not_break_rendering() -> None:
    variables = {1: "one", ("t",): object(), None: None, "name": "Ann", "list": object(), "self": 3}
    assert view.render(variables, "welcome.txt").startswith("Hello Ann,")
    assert view.respond(variables, Body="welcome.txt", Subject="{{ name }}!")["Subject"] == "Ann!"
    assert view.respond(variables, Body="welcome.txt", Subject="%(name)s %(self)s")["Subject"] == "Ann 3"


def test_guide_style_loader_still_autoescapes_html() -> None:
    """The guide's boot builds a plain Environment (autoescape off): HTML templates are escaped anyway."""
    view.LOADER = jinja2.Environment(loader=jinja2.PackageLoader(TEMPLATES["dir"], TEMPLATES["module"]),
                                     autoescape=False)
    evil = "<img src=x onerror=alert(1)>"
    html = view.render({"name": evil, "list": "x"}, "welcome.html")
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert view.render({"name": evil, "list": "x"}, "welcome.txt").startswith("Hello " + evil)  # text: as is
    view.HTML_AUTOESCAPE = False
    try:
        assert evil in view.render({"name": evil, "list": "x"}, "welcome.html")
    finally:
        view.HTML_AUTOESCAPE = True


def test_custom_loader_gets_one_dict() -> None:
    """1.x's LOADER contract: ``get_template(name).render(variables)``."""
    seen: list[object] = []

    class Template:
        def render(self, variables: dict[str, object]) -> str:
            seen.append(variables)
            return "ok"

    class Loader:
        def get_template(self, name: str) -> Template:
            return Template()

    view.LOADER = Loader()
    assert view.render({"self": 1, 2: 3}, "x.txt") == "ok"
    assert seen == [{"self": 1}]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.one_of(
        st.text(alphabet="ab {}%#-|.@:\n\"'", max_size=6),
        st.sampled_from(["{{ name }}", "{{name}}", "{{ subject }}", "{{- name -}}", "{{ missing }}", "{{ none }}",
                         "{{ range }}", "{{ name|upper }}", "{{ obj }}", "{% if name %}x{% endif %}", "{# c #}"]),
    ), max_size=5),
    name=st.one_of(st.text(max_size=8), st.integers(), st.none()),
)
def test_plain_header_templates_render_as_jinja2_does(pieces: list[str], name: object) -> None:
    """Header templates of text and {{ name }} are substituted directly: the same text as Jinja2's sandbox."""
    source = "".join(pieces)
    if "{{" not in source and "{%" not in source:
        source = "{{ name }}" + source
    variables = {"name": name, "subject": "Re: <hi> {{ x }}", "obj": MailResponse}
    try:
        expected = view._HEADER_TEMPLATES.from_string(source).render(variables)
    except jinja2.TemplateError:
        expected = None
    try:
        got = view._render_header(source, variables)
    except jinja2.TemplateError:
        got = None
    assert got == expected


def test_a_plain_header_template_with_a_defaultdict_renders_as_jinja2_does() -> None:
    from collections import defaultdict

    variables = defaultdict(int, {"name": "ann"})
    assert view._render_header("{{ name }}: {{ count }}", variables) == "ann: "
    assert "count" not in variables
