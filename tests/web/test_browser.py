"""The pages of ``lamson web`` in a real browser (issue 23, "Tested in a real browser").

Debian's headless Chromium, driven by Playwright, against a real pipeline: supervisord running the
demo application (receiver, router workers, relay, the logging server on the relay port) and
``lamson web`` over the same project. The browser does what a developer does: watches mail arrive,
opens it, looks at hostile HTML, searches, pages through a Maildir, writes to the application and
answers its reply, requeues a parked message and restarts a program. No test sleeps: every wait is one of Playwright's expectations (or
``wait_for``) with a deadline. Without ``/usr/bin/chromium`` the tests fail, never skip
(``scripts/setup --test`` installs it).

One browser and one pipeline per module (starting them costs more than the tests); every test uses
its own addresses and subjects, so they do not see each other's mail.
"""

from __future__ import annotations

import email.utils
import http.server
import re
import smtplib
import threading
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from lamson import maildir, parked
from lamson.envelope import Envelope
from tests.support import wait_for
from tests.web.conftest import WebPipeline, WebProject, start_web

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

#: How long an expectation waits (ms): the pipeline answers in well under a second, but the suite shares
#: two cores between several test processes.
WAIT = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the whole module. Missing, the tests fail: they never skip."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run bash scripts/setup --test (apt-get install chromium)"
    expect.set_options(timeout=WAIT)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, web_pipeline: WebPipeline) -> Iterator[Page]:
    """A fresh browser context on the web server; a JavaScript error on the page fails the test."""
    context = browser.new_context(base_url=web_pipeline.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(WAIT)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(f"console: {msg.text}") if console_error(msg.type, msg.text) else None)
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], f"errors on the page (JavaScript, or the Content-Security-Policy refusing it): {errors}"


def console_error(kind: str, text: str) -> bool:
    """A console message that is a defect: any error but Chromium's note of an HTTP error status, which
    the page answers itself (a refused send shows the server's sentence)."""
    return kind == "error" and not text.startswith("Failed to load resource: the server responded with a status of")


def token() -> str:
    """A word no other test uses (search finds exactly this test's mail)."""
    return "t" + uuid.uuid4().hex[:10]


def smtp_send(port: int, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.send_message(message)


def plain(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.org>"
    msg.set_content(body)
    return msg


def row(page: Page, testid: str, text: str) -> Locator:
    """The list rows (``message-row``, ``thread-row``, ...) holding ``text``."""
    return page.get_by_test_id(testid).filter(has_text=text)


def test_inbox_shows_the_reply_arriving_live_and_search_finds_it(page: Page, web_pipeline: WebPipeline) -> None:
    word = token()
    page.goto("/#/inbox")
    expect(page.get_by_test_id("list-stats")).to_contain_text("message")
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    # Marks this page load: a reload would lose it.
    page.evaluate("window.__sameLoad = true")

    smtp_send(web_pipeline.receiver_port, plain(f"{word}@example.org", "hello@test.com", f"Hello {word}", "Hi there."))

    # The application's reply lands in run/queue and the list shows it, at the top, without a reload.
    arrived = row(page, "message-row", f"Re: Hello {word}")
    expect(arrived).to_have_count(1)
    expect(page.get_by_test_id("message-row").first).to_contain_text(word)
    assert page.evaluate("window.__sameLoad") is True
    expect(page.get_by_test_id("mailbox-count-queue")).not_to_have_text("0")

    # Search: the word finds that reply only, and the page says how long the search took.
    page.get_by_test_id("search").fill(word)
    expect(page.get_by_test_id("message-row")).to_have_count(1)
    expect(page.get_by_test_id("message-row")).to_contain_text(f"Re: Hello {word}")
    expect(page.get_by_test_id("list-stats")).to_contain_text(" ms")
    assert word in page.url  # the search is in the address, so it survives a reload
    page.get_by_test_id("search").fill(f"{word} nosuchwordanywhere")
    expect(page.get_by_test_id("message-row")).to_have_count(0)
    expect(page.get_by_test_id("list-empty")).to_be_visible()
    page.get_by_test_id("search").fill(f"subject:{word}")
    expect(page.get_by_test_id("message-row")).to_have_count(1)

    # Opening it shows the message with the Reply button (the application sent it).
    page.get_by_test_id("message-row").click()
    expect(page.get_by_test_id("message-subject")).to_have_text(f"Re: Hello {word}")
    expect(page.get_by_test_id("reply")).to_have_text(f"Reply as {word}@example.org")
    expect(page.get_by_test_id("text-body")).to_be_visible()
    page.get_by_test_id("tab-source").click()
    expect(page.get_by_test_id("source")).to_contain_text(f"Subject: Re: Hello {word}")
    page.get_by_test_id("tab-headers").click()
    expect(page.get_by_test_id("headers-table")).to_contain_text("Message-ID")


def test_inbox_pages_older_messages_and_lists_other_maildirs(page: Page, web_pipeline: WebPipeline) -> None:
    word = token()
    # A Maildir of the application's own (a lamson.queue.Queue folder under run/), 60 messages, a minute apart.
    for i in range(60):
        msg = plain(f"{word}@example.org", "archive@test.com", f"Archived {i:02d} {word}", "kept")
        msg["Date"] = email.utils.formatdate(1_700_000_000 + 60 * i)
        web_pipeline.project.deliver(f"archive-{word}", msg.as_bytes())

    page.goto("/#/inbox")
    page.get_by_test_id(f"mailbox-archive-{word}").click()
    expect(page.get_by_test_id(f"mailbox-count-archive-{word}")).to_have_text("60")
    rows = page.get_by_test_id("row-subject")
    expect(rows).to_have_count(50)
    expect(rows.first).to_have_text(f"Archived 59 {word}")  # newest first
    expect(rows.last).to_have_text(f"Archived 10 {word}")
    page.get_by_test_id("older").click()
    expect(rows).to_have_count(60)
    expect(rows.last).to_have_text(f"Archived 00 {word}")
    expect(page.get_by_test_id("older")).to_be_hidden()


class PixelServer:
    """A tiny HTTP server standing for a tracker on the Internet: it records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                seen.append(self.path)
                gif = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c000000000100010000020144003b")
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(gif)))
                self.end_headers()
                self.wfile.write(gif)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PixelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_html_runs_no_script_and_fetches_no_remote_image_until_asked(page: Page, web_pipeline: WebPipeline) -> None:
    word = token()
    with PixelServer() as pixel:
        msg = plain("hello@test.com", f"{word}@example.org", f"Newsletter {word}", "The text part.")
        msg.add_alternative(
            f"<html><head><script>document.title = 'SCRIPT RAN'; top.__scriptRan = true;</script></head>"
            f"<body><h1>Hello {word}</h1><p id='para'>The HTML part.</p>"
            f"<img alt='tracker' src='http://127.0.0.1:{pixel.port}/pixel.gif'>"
            f"<img src='x' onerror=\"document.body.append('HANDLER RAN')\">"
            f"<script>document.body.append('SCRIPT RAN')</script></body></html>", subtype="html")
        # The logging server stores what it gets in run/queue: as if the application had sent it.
        smtp_send(web_pipeline.log_port, msg)

        page.goto(f"/#/inbox?q={word}")
        page.get_by_test_id("message-row").filter(has_text=f"Newsletter {word}").click()
        page.get_by_test_id("tab-html").click()
        frame_element = page.get_by_test_id("html-frame")
        expect(frame_element).to_have_attribute("sandbox", "")  # no allow-scripts, no allow-same-origin
        body = page.frame_locator("[data-testid=html-frame]").locator("body")
        expect(body).to_contain_text(f"Hello {word}")
        expect(body).to_contain_text("The HTML part.")
        frame = next(f for f in page.frames if "/html" in f.url)
        frame.wait_for_load_state("load")
        # Nothing the message carried ran: not its scripts, not its event handlers; the page is untouched.
        expect(body).not_to_contain_text("SCRIPT RAN")
        expect(body).not_to_contain_text("HANDLER RAN")
        assert page.evaluate("window.__scriptRan") is None
        assert "SCRIPT RAN" not in page.title()
        # The frame has loaded, images included: the tracker was never asked for anything.
        assert pixel.requests == []
        expect(page.get_by_test_id("blocked-images")).to_contain_text("1 remote image is blocked")

        # The reader asks for remote images: now (and only now) the image is fetched, still without scripts.
        page.get_by_test_id("load-images").click()
        expect(frame_element).to_have_attribute("src", re.compile(r"/html\?images=1$"))
        expect(frame_element).to_have_attribute("sandbox", "")
        wait_for(lambda: pixel.requests, 20, 0.05, "the remote image to be fetched after Load remote images")
        assert pixel.requests[0].startswith("/pixel.gif")
        expect(body).to_contain_text(f"Hello {word}")
        expect(body).not_to_contain_text("SCRIPT RAN")
        assert page.evaluate("window.__scriptRan") is None

    # The MIME tree: multipart/alternative and its two parts, each to download.
    page.get_by_test_id("tab-parts").click()
    links = page.get_by_test_id("part-link")
    expect(links).to_have_count(2)
    expect(page.get_by_test_id("panel-parts")).to_contain_text("multipart/alternative")
    with page.expect_download() as download:
        links.filter(has_text="text/html").click()
    assert f"Hello {word}".encode() in Path(download.value.path()).read_bytes()


def test_converse_with_the_application_from_the_browser(page: Page, web_pipeline: WebPipeline) -> None:
    word = token()
    me = f"{word}@example.org"
    page.goto("/#/compose")
    page.get_by_test_id("compose-from").fill(me)
    # A recipient the application does not serve: the receiver's refusal is shown, nothing is sent.
    page.get_by_test_id("compose-to").fill(f"{word}@elsewhere.example")
    page.get_by_test_id("compose-send").click()
    expect(page.get_by_test_id("compose-status")).to_contain_text("refused")
    expect(page.get_by_test_id("compose-status")).to_contain_text("550")
    expect(page).to_have_url(re.compile(r"#/compose$"))
    page.get_by_test_id("compose-to").fill("hello@test.com")
    page.get_by_test_id("compose-subject").fill(f"Question {word}")
    page.get_by_test_id("compose-body").fill("Does this reach you?")
    page.get_by_test_id("compose-send").click()

    # The page goes to the message it sent; the application's answer joins the thread, live.
    expect(page).to_have_url(re.compile(r"#/m/sent/[^/]+$"))
    expect(page.get_by_test_id("message-subject")).to_have_text(f"Question {word}")
    thread = page.get_by_test_id("thread-row")
    expect(thread).to_have_count(2)
    expect(thread.nth(0)).to_contain_text(f"Question {word}")
    expect(thread.nth(0)).to_have_class(re.compile(r"\bcurrent\b"))
    expect(thread.nth(1)).to_contain_text(f"Re: Question {word}")

    # Answer the application's reply as the other side: the form is filled from the reply.
    thread.nth(1).click()
    expect(page.get_by_test_id("message-subject")).to_have_text(f"Re: Question {word}")
    page.get_by_test_id("reply").click()
    expect(page.get_by_test_id("compose-from")).to_have_value(me)
    expect(page.get_by_test_id("compose-to")).to_have_value("hello@test.com")
    expect(page.get_by_test_id("compose-subject")).to_have_value(re.compile(f"Re: .*Question {word}"))
    page.get_by_test_id("compose-body").fill("Thanks, and one more thing.")
    page.get_by_test_id("compose-send").click()

    # The whole conversation, oldest first: my question, its answer, my reply, the answer to that.
    expect(page).to_have_url(re.compile(r"#/m/sent/[^/]+$"))
    expect(thread).to_have_count(4)
    expect(thread.nth(0)).to_contain_text(f"Question {word}")
    expect(thread.nth(2)).to_have_class(re.compile(r"\bcurrent\b"))
    expect(thread.nth(1)).to_have_class(re.compile(r"\bdir-in\b"))  # written by the application
    expect(thread.nth(2)).to_have_class(re.compile(r"\bdir-out\b"))  # written from the page
    expect(thread.nth(3)).to_have_class(re.compile(r"\bdir-in\b"))
    expect(thread.nth(3)).to_contain_text(word)


def test_requeue_a_parked_message_from_the_pipeline_page(page: Page, web_pipeline: WebPipeline) -> None:
    word = token()
    data = plain(f"{word}@example.org", "hello@test.com", f"Parked {word}", "Set aside.").as_bytes()
    envelope = Envelope(mail_from=f"{word}@example.org", rcpt_tos=("hello@test.com",), queue="incoming")
    key = parked.park(web_pipeline.undeliverable, envelope, "app.handlers.sample.START raised RuntimeError: test", data)

    page.goto("/#/pipeline")
    expect(page.get_by_test_id("rates-chart")).to_be_visible()
    expect(page.get_by_test_id("programs-table")).to_contain_text("receiver")
    mine = page.locator(f"[data-testid=parked-row][data-id='undeliverable/{key}']")
    expect(mine).to_contain_text(f"Parked {word}")
    expect(mine).to_contain_text("RuntimeError: test")
    mine.get_by_test_id("requeue").click()

    expect(page.get_by_test_id("pipeline-notice")).to_contain_text(f"Requeued “Parked {word}”")
    expect(mine).to_have_count(0)
    assert not (Path(web_pipeline.undeliverable) / "new" / key).exists()
    # Back in the pipeline: the application answers it as it would have the first time.
    wait_for(lambda: any(f"Re: Parked {word}".encode() in (web_pipeline.queue / "new" / k).read_bytes()
                         for k in maildir.keys(web_pipeline.queue)), 30, 0.1, "the requeued message's reply")

    # A parked message's own page says why it was parked, and requeues it too.
    other = parked.park(web_pipeline.undeliverable, envelope, "no route matched", data)
    page.goto(f"/#/m/undeliverable/{other}")
    expect(page.get_by_test_id("message-reason")).to_have_text("Parked: no route matched")
    page.get_by_test_id("message-requeue").click()
    expect(page.get_by_test_id("message-requeue")).to_have_text(re.compile(r"^Requeued to .*incoming"))
    assert not (Path(web_pipeline.undeliverable) / "new" / other).exists()


def test_restart_a_program_from_the_pipeline_page(page: Page, web_pipeline: WebPipeline) -> None:
    page.goto("/#/pipeline")
    metrics = page.locator("[data-testid=program-row][data-name=metrics]")
    expect(metrics.get_by_test_id("program-state")).to_have_text("RUNNING")
    before = metrics.get_by_test_id("program-pid").inner_text()
    assert before.isdigit()
    metrics.get_by_test_id("restart-metrics").click()

    expect(page.get_by_test_id("pipeline-notice")).to_have_text("metrics restarted.")
    # supervisord started it again: a new process, running, shown by the page's own refresh.
    expect(metrics.get_by_test_id("program-pid")).not_to_have_text(before)
    expect(metrics.get_by_test_id("program-state")).to_have_text("RUNNING")
    assert web_pipeline.supervised.ctl("pid", "metrics").strip() != before


def test_pages_behind_a_password(browser: Browser, web_project: WebProject) -> None:
    """With a password (run/web.token) the browser asks once; the pages, their API calls and the live
    event stream all go through with it, and nothing without it."""
    (web_project.root / "run" / "web.token").write_text("s3cret-for-the-test\n")
    with start_web(web_project, password="s3cret-for-the-test") as server:
        stranger = browser.new_context(base_url=server.url)
        try:
            assert stranger.request.get("/").status == 401
            assert stranger.request.get("/api/events").status == 401
        finally:
            stranger.close()

        context = browser.new_context(base_url=server.url, http_credentials={"username": "dev",
                                                                              "password": "s3cret-for-the-test"})
        context.set_default_timeout(WAIT)
        try:
            tab = context.new_page()
            tab.goto("/#/inbox")
            expect(tab.get_by_test_id("list-stats")).to_have_text("0 messages")
            expect(tab.get_by_test_id("live-status")).to_have_text("live")
            web_project.deliver("queue", plain("hello@test.com", "me@example.org", "Behind the password", "hi").as_bytes())
            expect(tab.get_by_test_id("row-subject")).to_have_text(["Behind the password"])
        finally:
            context.close()


def test_a_large_maildir_is_listed_while_it_is_first_indexed(browser: Browser, web_project: WebProject) -> None:
    """A server started over thousands of messages answers the first page at once with the newest mail,
    says that indexing goes on, and shows every message when it is done (no request waits for it)."""
    count = 6000
    queue = maildir.ensure(web_project.root / "run" / "queue")
    for i in range(count):
        msg = plain(f"user{i % 13}@example.org", "hello@test.com", f"bulk message {i:05d}", f"body {i}\n")
        maildir.write(queue, msg.as_bytes(), key=f"{1_760_000_000 + i}.M{i:06d}P1Q{i}.testhost", sync=False)
    with start_web(web_project) as server:
        context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 860})
        context.set_default_timeout(WAIT)
        try:
            tab = context.new_page()
            tab.goto("/#/inbox/queue")
            stats = tab.get_by_test_id("list-stats")
            expect(stats).to_have_attribute("data-indexing", re.compile(r"^\d+$"))
            expect(stats).to_contain_text("more to come")
            expect(tab.get_by_test_id("row-subject").first).to_have_text("bulk message 05999")
            expect(stats).to_have_text(f"{count} messages", timeout=120_000)
            expect(stats).not_to_have_attribute("data-indexing", re.compile(".*"))
        finally:
            context.close()
