"""Issue 21's osb findings, sent over SMTP to the real pipeline running examples/osb.

The pipeline is the example's own deploy/supervisord.conf on free ports, on
loopback (the ``blog`` fixture of tests/examples/test_osb.py). Nothing here
verifies a sender (a loopback peer, no DKIM, no submission listener), so
every message is what a forger could send; a "verified" author is one who
answered a confirmation request, i.e. read the mailbox.

* Finding 1: forged senders cannot publish, overwrite or delete in a
  confirmed author's blog, whether the envelope, the From header or both
  name her.
* Finding 2: stored XSS: a list of payloads from the field (OWASP's XSS
  filter evasion cheat sheet style, in Markdown and raw HTML forms) leaves
  nothing a browser would run on the page.
* Finding 7: 80 KB posts of ``[a](`` no longer hold the router workers:
  they are published (as plain text) in seconds, and another sender's mail
  is answered meanwhile.
"""

from __future__ import annotations

import html
import re
import smtplib
import time
from html.parser import HTMLParser

import pytest

from lamson.html import render_markdown
from tests.examples.conftest import short_tmp  # noqa: F401 - the blog fixture's scratch folder
from tests.examples.test_osb import HOST, Blog, blog, confirm  # noqa: F401 - blog is the fixture

ALICE = "alice@example.org"
MALLORY = "mallory@evil.test"
PAGE = "posts/alice.example.org/my-first-post.html"

#: XSS vectors, Markdown and raw HTML, each written as a post author could.
PAYLOADS = [
    "[x](&#106;avascript:alert(1))",
    "[x](java&#x09;script:alert(1))",
    "[x](java&#x0A;script:alert(1))",
    "[x](java&#x0D;script:alert(1))",
    "[x](&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1))",
    "[x](&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058alert(1))",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](javascript&colon;alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](data:text/html,<script>alert(1)</script>)",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    '[x](javascript:alert(1) "title")',
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "[x][r2]\n\n[r2]: &#106;avascript:alert(1)",
    "<javascript:alert(1)>",
    "[m](/\\evil.example/)",
    "[m](\\\\evil.example/)",
    "[m](//evil.example/)",
    "[m](/%5Cevil.example/)",
    "[m](&#47;&#92;evil.example/)",
    "<script>alert(1)</script>",
    "<SCRIPT SRC=http://xss.example/xss.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<IMG SRC="jav&#x09;ascript:alert(1);">',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<iframe src=javascript:alert(1)></iframe>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<div style="width: expression(alert(1))">x</div>',
    "<body onload=alert(1)>",
    '<object data="javascript:alert(1)"></object>',
    '<embed src="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">',
    '<form action="javascript:alert(1)"><input type=submit></form>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
    "<<script>script>alert(1)<</script>/script>",
    '[<img src=x onerror=alert(1)>](http://ok.example/)',
    '[x](http://ok.example/" onmouseover="alert(1))',
    '[x](http://ok.example/ "a\\" onmouseover=\\"alert(1)")',
    "`<script>alert(1)</script>`",
    "```\n<script>alert(1)</script>\n```",
    "<!--<script>alert(1)</script>-->",
    '<a href="vbscript:msgbox(1)">x</a>',
    '<base href="javascript:alert(1)//">',
    '<link rel="stylesheet" href="javascript:alert(1)">',
]

#: Tags that can run script, load a document or change where links go.
DANGEROUS_TAGS = {"script", "iframe", "frame", "frameset", "svg", "math", "object", "embed", "applet", "form",
                  "input", "button", "meta", "base", "link", "style", "body", "html"}
#: The document tags of examples/osb/app/templates/base.html, which the check above counts too.
TEMPLATE_TAGS = ["<html>", "<meta>", "<meta>", "<style>", "<body>"]
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "background", "poster", "xlink:href"}


class _Elements(HTMLParser):
    """Every element with its attributes, character references decoded, as a browser reads them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    handle_startendtag = handle_starttag


def script_capable(page: str, own_host: str = "") -> list[str]:
    """What in ``page`` a browser could run or follow off-site from a ``/\\`` target: [] when nothing."""
    parser = _Elements()
    parser.feed(page)
    problems = []
    for tag, attrs in parser.found:
        if tag in DANGEROUS_TAGS:
            problems.append(f"<{tag}>")
        for name, value in attrs.items():
            if name.startswith("on"):
                problems.append(f"<{tag} {name}>")
            if name == "style":
                problems.append(f"<{tag} style>")
            if name in URL_ATTRIBUTES:
                url = re.sub(r"[\x00-\x20\x7f]", "", html.unescape(value)).replace("\\", "/").lower()
                if re.match(r"(javascript|vbscript|data|livescript|mocha):", url):
                    problems.append(f"<{tag} {name}={value!r}>")
                if url.startswith("//"):  # /\host and \\host are //host to a browser: another site
                    problems.append(f"<{tag} {name}={value!r}> (off-site)")
    return problems


def post_body(page: str) -> str:
    """The rendered post on its page: between the meta line and the end of the article (post.html)."""
    return page.split('<p class="meta">', 1)[1].split("</p>", 1)[1].split("</article>", 1)[0]


def send_as(b: Blog, envelope: str, header: str, to: str, subject: str, body: str) -> None:
    """One message whose envelope sender and From header are given apart, as a forger writes them."""
    data = f"From: {header}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    with smtplib.SMTP("127.0.0.1", b.ports["receiver"], timeout=30) as smtp:
        smtp.sendmail(envelope, [to], data.encode())


def test_the_checker_sees_what_it_must() -> None:
    """The check above fails on the raw payloads: it can tell a live page from a safe one."""
    assert script_capable('<a href="&#106;avascript:alert(1)">x</a>')
    assert script_capable('<a href="java\tscript:alert(1)">x</a>')
    assert script_capable('<a href="/\\evil.example/">m</a>')
    assert script_capable("<img src=x onerror=alert(1)>")
    assert script_capable("<svg><p>")
    assert not script_capable('<a href="http://ok.example/" rel="nofollow noopener">ok</a><p>text</p>')


@pytest.mark.parametrize("payload", PAYLOADS)
def test_each_payload_renders_to_nothing_script_capable(payload: str) -> None:
    rendered = render_markdown(payload)
    assert script_capable(rendered) == [], rendered  # text that merely mentions javascript: is harmless


def test_a_quadratic_post_renders_in_well_under_a_second() -> None:
    """Finding 7's input (80 KB of ``[a](``: 158 s of CPU before): now cut off by the CPU budget."""
    text = "[a](" * 20_000
    started = time.process_time()
    page = render_markdown(text)
    spent = time.process_time() - started
    assert spent < 0.6, f"{spent:.2f} s"
    assert page.startswith("<p>[a](") and "<a " not in page


def test_forged_senders_cannot_touch_a_confirmed_authors_blog(blog: Blog) -> None:  # noqa: F811
    b = blog
    b.send(ALICE, f"my-first-post@{HOST}", "My first post", "# Hello\n\nWritten *by mail*.")
    confirm(b, ALICE, b.reply(ALICE, "Confirmation required", "Alice's confirmation request"))
    b.reply(ALICE, "Published: My first post", "the published reply")
    original = b.page(PAGE)

    attempts = ((f"my-first-post-delete@{HOST}", "Delete"), (f"my-first-post@{HOST}", "Defaced"),
                (f"brand-new@{HOST}", "Under her name"))
    # The finding's own attack (envelope and From both Alice), then a forged envelope alone: the
    # confirmation requests go to Alice, who does not answer them.
    for header in (ALICE, f"Mallory <{MALLORY}>"):
        for to, subject in attempts:
            send_as(b, ALICE, header, to, subject, "Owned.")
    # A forged From header alone: the request goes to Mallory's own envelope, and confirming it (she
    # reads her mailbox) acts in her blog, never in Alice's.
    answers = ("No post named my-first-post", "Published: Defaced", "Published: Under her name")
    for (to, subject), answer in zip(attempts, answers, strict=True):
        send_as(b, MALLORY, f"Alice <{ALICE}>", to, subject, "Owned.")
        confirm(b, MALLORY, b.reply(MALLORY, "Confirmation required", "Mallory's own confirmation request"))
        b.reply(MALLORY, answer, f"the answer to Mallory's confirmed {subject!r}")
    assert "Owned." in b.page("posts/mallory.evil.test/my-first-post.html")

    assert b.page(PAGE) == original
    assert not (b.root / "app/data/posts/alice.example.org/brand-new.html").exists()
    to_alice = [str(m["Subject"]) for m in b.replies() if m["To"] == ALICE]
    assert not any(s.startswith(("Deleted", "Published: Defaced", "Published: Under")) for s in to_alice)
    # Alice was asked (a handful of times at most: lamson.confirm caps unsolicited mail per hour).
    assert 2 <= sum(s.startswith("Confirmation required") for s in to_alice) <= 5


def test_xss_payloads_posted_over_smtp_leave_nothing_that_runs(blog: Blog) -> None:  # noqa: F811
    b = blog
    bob = "bob@example.net"
    body = "\r\n\r\n".join(p.replace("\n", "\r\n") for p in PAYLOADS)
    b.send(bob, f"xss@{HOST}", "Payloads <script>alert(1)</script>", body)
    confirm(b, bob, b.reply(bob, "Confirmation required", "Bob's confirmation request"))
    b.reply(bob, "Published:", "the published reply")
    page = b.page("posts/bob.example.net/xss.html")
    assert script_capable(post_body(page)) == []
    # The page around it holds only the template's own document tags (base.html), nothing from the post.
    assert sorted(script_capable(page)) == sorted(TEMPLATE_TAGS), script_capable(page)
    body = post_body(page)
    assert "alert(1)" in body  # the payloads are on the page, as text
    for link in re.findall(r"<a [^>]*>", body):
        assert 'rel="nofollow noopener"' in link, link


def test_quadratic_posts_do_not_hold_the_router_workers(blog: Blog) -> None:  # noqa: F811
    """Two 80 KB posts of ``[a](`` (one per router worker), then another sender's message."""
    b = blog
    body = "\r\n".join("[a](" * 200 for _ in range(100))  # 80 KB, lines under SMTP's 1000 octets
    authors = ["carol@example.com", "erin@example.com"]
    requests = []
    for author in authors:
        b.send(author, f"slow@{HOST}", "Slow", body)
        requests.append(b.reply(author, "Confirmation required", f"{author}'s confirmation request"))
    started = time.monotonic()
    for author, request in zip(authors, requests, strict=True):
        confirm(b, author, request)
    b.send("dave@example.org", f"meanwhile@{HOST}", "Meanwhile", "An unrelated post.")
    b.reply("dave@example.org", "Confirmation required", "the unrelated sender's answer")
    unrelated = time.monotonic() - started
    for author in authors:
        b.reply(author, "Published: Slow", f"{author}'s published reply")
    published = time.monotonic() - started
    # Before: 158 s of CPU each; the unrelated sender waited 44 s. Seconds here include the pipeline.
    assert unrelated < 10 and published < 15, (unrelated, published)
    page = b.page("posts/carol.example.com/slow.html")
    assert "shown as plain text" in post_body(page) and "<a " not in post_body(page)
