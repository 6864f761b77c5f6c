"""lamson.confirm's storage and lamson.html's HtmlMail as a Lamson 1.x application uses them.

Written from 1.x's documented API: ``ConfirmationStorage(db={})`` keeps its
entries in ``confirmations`` under ``key(target, from_address)`` and has
``get``/``store``/``delete``/``clear``; ``HtmlMail(css_file, html_template)``
has ``stylesheet``, ``load_css`` and ``apply_styles`` and answers with the
content type asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from lamson.confirm import ConfirmationEngine, ConfirmationStorage
from lamson.mail import MailRequest
from lamson.names import Names


@pytest.fixture(params=["dict", "redis"])
def storage(request: pytest.FixtureRequest, no_context: None) -> ConfirmationStorage:
    if request.param == "dict":
        return ConfirmationStorage(db={})
    conn: redis.Redis = request.getfixturevalue("redis_conn")
    return ConfirmationStorage(conn=conn, names=Names("compatconfirm"))


def test_storage_methods_and_confirmations(storage: ConfirmationStorage) -> None:
    assert storage.get("dev", "joe@example.com") == (None, None)
    assert len(storage.confirmations) == 0
    storage.store("dev", "joe@example.com", "s3cret", "pending-1")
    storage.store("ops", "ann@example.com", "other", "pending-2")
    assert storage.get("dev", "joe@example.com") == ("s3cret", "pending-1")
    key = storage.key("dev", "joe@example.com")
    assert key.endswith("dev:joe@example.com")
    assert storage.confirmations[key] == ("s3cret", "pending-1")
    assert sorted(storage.confirmations) == sorted([key, storage.key("ops", "ann@example.com")])
    storage.delete("dev", "joe@example.com")
    assert storage.get("dev", "joe@example.com") == (None, None)
    assert key not in storage.confirmations and len(storage.confirmations) == 1
    storage.clear()
    assert len(storage.confirmations) == 0 and storage.get("ops", "ann@example.com") == (None, None)


def test_confirmations_can_be_written_like_a_dict(storage: ConfirmationStorage) -> None:
    key = storage.key("dev", "joe@example.com")
    storage.confirmations[key] = ("abc", "pending-9")
    assert storage.get("dev", "joe@example.com") == ("abc", "pending-9")
    del storage.confirmations[key]
    assert storage.get("dev", "joe@example.com") == (None, None)
    with pytest.raises(KeyError):
        del storage.confirmations[key]


def test_dict_storage_is_the_db_given() -> None:
    db: dict[str, Any] = {}
    storage = ConfirmationStorage(db=db)
    assert storage.confirmations is db
    storage.store("dev", "joe@example.com", "abc", "p1")
    assert db == {"dev:joe@example.com": ("abc", "p1")}  # 1.x's TARGET:SENDER key and (secret, id) value
    # Each instance has its own entries (1.x's default dict was shared by every instance).
    assert ConfirmationStorage(db={}).get("dev", "joe@example.com") == (None, None)


def test_bounds_still_hold(storage: ConfirmationStorage, tmp_path: Path) -> None:
    storage.max_pending = 2
    assert storage.store("dev", "a@example.com", "1", "p-a") == []
    assert storage.store("dev", "b@example.com", "2", "p-b") == []
    assert storage.store("dev", "c@example.com", "3", "p-c") == ["p-a"]
    assert storage.get("dev", "a@example.com") == (None, None) and len(storage.confirmations) == 2
    engine = ConfirmationEngine(str(tmp_path / "pending"), storage, unsolicited_per_hour=1)
    assert engine.may_send("victim@example.com") and not engine.may_send("victim@example.com")


def test_engine_verify_uses_the_storage(storage: ConfirmationStorage, tmp_path: Path) -> None:
    engine = ConfirmationEngine(str(tmp_path / "pending"), storage)
    message = MailRequest("127.0.0.1", "joe@example.com", "dev-subscribe@test.com",
                          "From: joe@example.com\nTo: dev-subscribe@test.com\nSubject: join\n\nplease\n")
    secret = engine.register("dev", message).rsplit("-", 1)[1]
    assert storage.get("dev", "joe@example.com")[0] == secret
    assert len(storage.confirmations) == 1
    original = engine.verify("dev", "joe@example.com", secret)
    assert original is not None and original["subject"] == "join"
    assert len(storage.confirmations) == 0


# -- HtmlMail ---------------------------------------------------------------------------------------------

CSS = "body { color: {{ ink }}; }\np { margin: 0; }\n.note { color: green; }\n#top { font-size: 20px; }\n"
PAGE = '<html><body><div id="top">{{ title }}</div>{{ content }}<p class="note">bye</p></body></html>'
CONTENT = "Hello {{ name }}, see [the guide](https://example.com/guide).\n"
OTHER_CSS = "p { color: red; }\n"


@pytest.fixture
def templates(tmp_path: Path) -> Iterator[None]:
    import jinja2

    from lamson import view

    for name, text in {"style.css": CSS, "other.css": OTHER_CSS, "page.html": PAGE, "content.md": CONTENT,
                       "text.txt": "Plain {{ name }}.\n"}.items():
        (tmp_path / name).write_text(text)
    previous = view.LOADER
    view.LOADER = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tmp_path)))
    yield
    view.LOADER = previous


def styles(page: str) -> dict[str, str]:
    """tag#id.class → its style attribute, for every element of ``page`` that has one."""
    from html.parser import HTMLParser

    found: dict[str, str] = {}

    class Reader(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            named = dict(attrs)
            key = tag + (f"#{named['id']}" if named.get("id") else "") + (
                f".{named['class']}" if named.get("class") else "")
            if named.get("style"):
                found[key] = str(named["style"])

    Reader().feed(page)
    return found


@pytest.mark.usefixtures("templates")
def test_htmlmail_stylesheet_load_css_and_apply_styles() -> None:
    from lamson.html import HtmlMail

    mail = HtmlMail("style.css", "page.html", {"ink": "navy"})
    assert mail.template == "page.html"
    assert mail.stylesheet == [("body", [], "color: navy"), ("p", [], "margin: 0"), (".note", [], "color: green"),
                               ("#top", [], "font-size: 20px")]
    styled = mail.apply_styles('<body><div id="top">x</div><p class="note">y</p></body>')
    assert styles(styled) == {"body": "color: navy", "div#top": "font-size: 20px",
                              "p.note": "margin: 0; color: green"}
    mail.load_css("other.css", {})
    assert mail.stylesheet == [("p", [], "color: red")]
    assert styles(mail.render({"name": "Ann", "title": "t"}, "content.md")) == {
        "p": "color: red", "p.note": "color: red"}


@pytest.mark.usefixtures("templates")
def test_htmlmail_respond_gives_the_content_type_asked_for() -> None:
    from lamson.html import HtmlMail

    mail = HtmlMail("style.css", "page.html", {"ink": "navy"})
    variables = {"name": "Ann", "title": "Hi"}
    html_only = mail.respond(variables, "content.md", From="noreply@test.com", To="ann@example.org",
                             Subject="Hi %(name)s")
    parsed = MailRequest(None, None, None, html_only.as_bytes())
    assert parsed.to_message().get_content_type() == "text/html"
    assert parsed["subject"] == "Hi Ann"
    assert 'href="https://example.com/guide"' in (html_only.Html or "")
    assert styles(html_only.Html or "")["div#top"] == "font-size: 20px"

    both = mail.respond(variables, "content.md", Body="content.md", From="noreply@test.com",
                        To="ann@example.org", Subject="Hi")
    parsed = MailRequest(None, None, None, both.as_bytes())
    assert parsed.to_message().get_content_type() == "multipart/alternative"
    assert parsed.body() is not None and parsed.body().startswith("Hello Ann, see [the guide]")

    literal = mail.respond(variables, "content.md", Body="Hello %(name)s, in text.", To="ann@example.org",
                           From="noreply@test.com", Subject="Hi")
    assert literal.Body == "Hello Ann, in text."
    template = mail.respond(variables, "content.md", Body="text.txt", To="ann@example.org",
                            From="noreply@test.com", Subject="Hi")
    assert template.Body == "Plain Ann."


@pytest.mark.usefixtures("templates")
@pytest.mark.parametrize("href", ["java\tscript:alert(1)", "java&#9;script:alert(1)", "&#106;avascript:alert(1)",
                                  " JavaScript:alert(1)", "data:text/html,<b>x</b>", "//evil.example/x"])
def test_htmlmail_drops_script_urls_as_a_browser_reads_them(href: str) -> None:
    from lamson.html import HtmlMail

    mail = HtmlMail("style.css", "page.html", {"ink": "navy"})
    styled = mail.apply_styles(f'<p><a href="{href}">x</a><img src="cid:logo@test.com"></p>')
    assert "href" not in styled and "alert" not in styled.replace("x</a>", "")
    assert 'src="cid:logo@test.com"' in styled
