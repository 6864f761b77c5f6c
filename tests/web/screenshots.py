"""The screenshots in docs/img (web-inbox.png, web-thread.png, web-pipeline.png), taken by hand.

Not part of the suite (its name does not start with ``test_``); run it when the pages change::

    .venv/bin/pytest -p no:cacheprovider -n 0 tests/web/screenshots.py

It starts the same pipeline and browser as tests/web/test_browser.py, gives the demo application a
little traffic (a few correspondents, a conversation held from the page, a parked message, a short
stream of messages for the rates chart), then photographs the three pages. Each PNG is checked to stay under
300 KB, so the repository does not grow with every re-take.
"""

from __future__ import annotations

import math
import smtplib
import time
from pathlib import Path

from playwright.sync_api import Browser, expect

from lamson import parked
from lamson.envelope import Envelope
from tests.support import REPO, wait_for
from tests.web.conftest import WebPipeline
from tests.web.test_browser import WAIT, browser, plain  # noqa: F401 - the browser fixture is used by name

OUT = REPO / "docs" / "img"
MAX_BYTES = 300 * 1024

CORRESPONDENTS = [
    ("ada@example.org", "hello@test.com", "Is the workshop still on Friday?"),
    ("grace@example.net", "support@test.com", "Password reset link expired"),
    ("linus@example.com", "hello@test.com", "Question about the mailing list"),
    ("margaret@example.org", "orders@test.com", "Order 1042: delivery address"),
    ("alan@example.net", "hello@test.com", "Unsubscribe me, please"),
]


def send(port: int, sender: str, to: str, subject: str, body: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.send_message(plain(sender, to, subject, body))


def shot(path: Path) -> None:
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path.name} is {size} bytes (keep screenshots under {MAX_BYTES})"
    print(f"wrote {path} ({size} bytes)")


def test_take_screenshots(browser: Browser, web_pipeline: WebPipeline) -> None:  # noqa: F811
    context = browser.new_context(base_url=web_pipeline.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type != "log" else None)
    try:
        # First some traffic, so the rates chart has a shape: 120 messages over about 40 s, in waves.
        with smtplib.SMTP("127.0.0.1", web_pipeline.receiver_port, timeout=30) as smtp:
            for i in range(120):
                smtp.send_message(plain(f"load{i % 7}@example.com", "hello@test.com", f"Load {i}", "load"))
                time.sleep(0.1 + 0.4 * (0.5 + 0.5 * math.sin(i / 9)))
        for sender, to, subject in CORRESPONDENTS:
            send(web_pipeline.receiver_port, sender, to, subject, "Hello,\n\nplease tell me more.\n")

        # A conversation held from the page: a question, the answer, a reply, the next answer.
        page.goto("/#/compose")
        page.get_by_test_id("compose-from").fill("joan@example.org")
        page.get_by_test_id("compose-to").fill("hello@test.com")
        page.get_by_test_id("compose-subject").fill("Can I bring a friend?")
        page.get_by_test_id("compose-body").fill("Hi! Is there room for one more on Friday?\n\nJoan")
        page.get_by_test_id("compose-send").click()
        thread = page.get_by_test_id("thread-row")
        expect(thread).to_have_count(2)
        thread.nth(1).click()
        page.get_by_test_id("reply").click()
        expect(page.get_by_test_id("compose-to")).to_have_value("hello@test.com")
        page.get_by_test_id("compose-body").fill("Thanks! We will be two, then.\n\nJoan")
        page.get_by_test_id("compose-send").click()
        expect(thread).to_have_count(4)

        # Something parked, for the pipeline page.
        data = plain("eve@example.com", "orders@test.com", "Order 1043", "Please ship today.").as_bytes()
        parked.park(web_pipeline.undeliverable, Envelope(mail_from="eve@example.com", rcpt_tos=("orders@test.com",)),
                    "app.handlers.sample.START raised RuntimeError: the stock service did not answer", data)

        page.goto("/#/inbox")
        expect(page.get_by_test_id("message-row").first).to_be_visible()
        expect(page.get_by_test_id("live-status")).to_have_text("live")
        page.screenshot(path=str(OUT / "web-inbox.png"))
        shot(OUT / "web-inbox.png")

        # The thread: the application's first answer, with the conversation below it.
        page.get_by_test_id("search").fill("Can I bring a friend")
        page.get_by_test_id("message-row").filter(has_text="Re: Can I bring a friend?").first.click()
        expect(page.get_by_test_id("thread-row")).to_have_count(4)
        page.screenshot(path=str(OUT / "web-thread.png"), full_page=True)
        shot(OUT / "web-thread.png")

        page.goto("/#/pipeline")
        expect(page.get_by_test_id("parked-row").first).to_be_visible()
        expect(page.get_by_test_id("rate-accepted")).to_be_visible()
        wait_for(lambda: page.get_by_test_id("program-row").count() > 0, 30, 0.2, "the programs")
        page.screenshot(path=str(OUT / "web-pipeline.png"), full_page=True)
        shot(OUT / "web-pipeline.png")
        print("\n".join(problems) or "no console messages")
    finally:
        context.close()
