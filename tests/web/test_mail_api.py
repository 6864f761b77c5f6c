"""The mail API of ``lamson web`` over real HTTP: a real server process over a temporary project.

Mailboxes, the list and search, a message's detail (headers, text, MIME tree, thread, reply fields),
its raw source and parts, sending over SMTP (to an aiosmtpd sink of our own, and once through the
whole pipeline to the demo application), the live event stream.
"""

from __future__ import annotations

import http.client
import json
import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from urllib.parse import quote

from lamson import maildir, parked
from lamson.envelope import Envelope
from lamson.queue import Queue
from tests.sink import smtp_sink
from tests.support import wait_for
from tests.web.conftest import WebPipeline, WebServer


def plain(sender: str, to: str, subject: str, body: str, mid: str | None = None, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    if mid:
        msg["Message-ID"] = mid
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def rich(subject: str) -> bytes:
    """Text and HTML alternatives plus a PDF attachment."""
    msg = EmailMessage()
    msg["From"] = "App <hello@test.com>"
    msg["To"] = "bob@example.org"
    msg["Cc"] = "carol@example.org"
    msg["Reply-To"] = "answers@test.com"
    msg["Subject"] = subject
    msg["Message-ID"] = "<rich@test.com>"
    msg.set_content("The text part, café.\n")
    msg.add_alternative("<p>The <b>HTML</b> part.</p>", subtype="html")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="report é.pdf")
    return msg.as_bytes()


def test_mailboxes_list_search_and_detail(web: WebServer) -> None:
    project = web.project
    first = project.deliver("queue", plain("hello@test.com", "bob@example.org", "Welcome aboard", "Hi Bob, zebra.\n",
                                           "<w1@test.com>"))
    second = project.deliver("queue", rich("A rich one"))
    project.deliver("sent", plain("bob@example.org", "hello@test.com", "Hello", "From Bob.\n", "<b1@example.org>"))
    Queue(project.root / "run" / "q-posts").push(plain("x@example.org", "posts@test.com", "Queued", "q\n"))
    Queue(project.root / "run" / "spam").push(plain("spam@example.org", "x@test.com", "Buy now", "spam\n"))
    envelope = Envelope(mail_from="p@example.org", rcpt_tos=("hello@test.com",), queue="incoming")
    parked.park(project.root / "run" / "undeliverable", envelope, "app.handlers.sample.START raised KeyError: 'x'",
                plain("p@example.org", "hello@test.com", "Parked one", "p\n"))

    boxes = {b["name"]: b for b in web.get_json("/api/mailboxes")["mailboxes"]}
    assert [n for n in boxes][:4] == ["queue", "sent", "undeliverable", "bounced"]
    assert boxes["queue"]["count"] == 2 and boxes["queue"]["kind"] == "log"
    assert boxes["sent"]["count"] == 1 and boxes["undeliverable"]["count"] == 1
    assert boxes["q-posts"]["kind"] == "queue" and boxes["q-posts"]["count"] == 1
    assert boxes["spam"]["kind"] == "spam"
    assert Path(boxes["queue"]["path"]) == (project.root / "run" / "queue").resolve()

    listed = web.get_json("/api/messages?mailbox=queue")
    assert [m["subject"] for m in listed["messages"]] == ["A rich one", "Welcome aboard"]
    assert listed["total"] == 2 and listed["next"] is None and listed["took_ms"] >= 0
    assert listed["indexing"] == 0  # caught up: nothing left for the background indexing
    top = listed["messages"][0]
    assert top["id"] == f"queue/{second}" and top["from_app"] is True and top["has_html"] is True
    assert top["attachments"] == 1 and top["snippet"].startswith("The text part")

    everything = web.get_json("/api/messages?limit=2")
    assert everything["total"] == 6 and len(everything["messages"]) == 2 and everything["next"]
    rest = web.get_json(f"/api/messages?limit=50&before={quote(everything['next'])}")
    assert len(rest["messages"]) == 4 and rest["next"] is None
    parked_row = next(m for m in rest["messages"] + everything["messages"] if m["mailbox"] == "undeliverable")
    assert parked_row["reason"] == "app.handlers.sample.START raised KeyError: 'x'"
    assert parked_row["subject"] == "Parked one" and parked_row["from_app"] is False

    assert [m["id"] for m in web.get_json("/api/messages?q=zebra")["messages"]] == [f"queue/{first}"]
    assert web.get_json("/api/messages?q=from:bob&mailbox=sent")["total"] == 1
    assert web.get_json("/api/messages?q=subject:zebra")["total"] == 0
    assert web.get_json("/api/messages?mailbox=nope", 404)["error"]
    assert web.get_json("/api/messages?limit=0", 400)["error"]
    assert web.get_json("/api/messages?before=garbage", 400)["error"]

    detail = web.get_json(f"/api/messages/queue/{second}")
    assert detail["subject"] == "A rich one" and detail["cc"] == "carol@example.org"
    assert detail["reply_to"] == "answers@test.com" and detail["html"] is True
    assert detail["text"] == "The text part, café.\n"
    assert ["Subject", "A rich one"] in detail["headers"]
    tree = detail["parts"]
    assert [p["content_type"] for p in tree] == ["multipart/alternative", "application/pdf"]
    assert [c["path"] for c in tree[0]["children"]] == ["1.1", "1.2"]
    assert tree[1] == {"path": "2", "content_type": "application/pdf", "filename": "report é.pdf", "size": 13,
                       "disposition": "attachment", "children": []}
    assert detail["reply"] == {"mail_from": "bob@example.org", "to": "answers@test.com", "subject": "Re: A rich one",
                               "in_reply_to": "<rich@test.com>", "references": "<rich@test.com>"}
    assert [m["id"] for m in detail["thread"]] == [f"queue/{second}"]

    raw = web.get(f"/api/messages/queue/{second}/raw")
    assert raw.status == 200 and raw.headers["content-type"] == "text/plain; charset=utf-8"
    assert raw.body == (project.root / "run" / "queue" / "new" / second).read_bytes()
    assert "content-disposition" not in raw.headers
    download = web.get(f"/api/messages/queue/{second}/raw?download=1")
    assert download.headers["content-disposition"].startswith("attachment")

    part = web.get(f"/api/messages/queue/{second}/parts/2")
    assert part.status == 200 and part.body == b"%PDF-1.4 fake"
    assert part.headers["content-disposition"].startswith("attachment;")
    assert "report%20%C3%A9.pdf" in part.headers["content-disposition"]
    assert part.headers["x-content-type-options"] == "nosniff"
    html_part = web.get(f"/api/messages/queue/{second}/parts/1.2")
    assert html_part.headers["content-type"].startswith("application/octet-stream")  # never rendered as a page

    for missing in (f"/api/messages/queue/{second}/parts/9", "/api/messages/queue/nope", "/api/messages/nobox/x",
                    f"/api/messages/queue/{second}/other", "/api/messages/queue/..%2F..%2Fetc", "/api/nothing"):
        reply = web.get(missing)
        assert reply.status == 404, missing
        assert reply.json()["error"]
    assert web.get(f"/api/messages/queue/{first}/html").status == 404  # no HTML part

    # Moved to cur/ by a mail reader: same key, same answers.
    path = project.root / "run" / "queue" / "new" / first
    path.rename(project.root / "run" / "queue" / "cur" / f"{first}:2,S")
    assert web.get_json(f"/api/messages/queue/{first}")["subject"] == "Welcome aboard"
    assert web.get_json("/api/messages?mailbox=queue")["total"] == 2


def test_send_reaches_the_receiver_with_the_typed_sender_and_threads(web: WebServer) -> None:
    project = web.project
    original = project.deliver("queue", plain("Demo <hello@test.com>", "bob@example.org", "Your order",
                                              "Thanks.\n", "<order@test.com>", References="<start@example.org>"))
    with smtp_sink(port=project.receiver_port) as sink:
        answer = web.post_json("/api/send", {"mail_from": "Bob <bob@example.org>", "to": "hello@test.com",
                                             "subject": "Re: Your order", "body": "Where is it?",
                                             "in_reply_to": f"queue/{original}"})
        assert answer["ok"] is True and answer["reply"].startswith("250")
        assert answer["id"].startswith("sent/") and answer["message_id"].startswith("<")
        wait_for(lambda: sink.messages, 10, 0.05, "the sink to receive the message")
    received = sink.messages[0]
    assert received.mail_from == "bob@example.org" and received.rcpt_tos == ["hello@test.com"]
    msg = message_from_bytes(received.data, policy=default)
    assert msg["In-Reply-To"] == "<order@test.com>"
    assert msg["References"] == "<start@example.org> <order@test.com>"
    assert msg["Message-ID"] == answer["message_id"] and msg["Date"]
    assert msg.get_content().replace("\r\n", "\n") == "Where is it?\n"

    key = answer["id"].split("/", 1)[1]
    copy = (project.root / "run" / "web-sent" / "new" / key).read_bytes()
    assert copy == received.data  # the copy is what the receiver took, byte for byte
    sent_detail = web.get_json(f"/api/messages/{answer['id']}")
    assert sent_detail["from_app"] is False
    assert [m["id"] for m in sent_detail["thread"]] == [f"queue/{original}", answer["id"]]
    assert [m["id"] for m in web.get_json(f"/api/messages/queue/{original}")["thread"]] == \
        [f"queue/{original}", answer["id"]]

    # A list of recipients; no in_reply_to: no thread headers.
    with smtp_sink(port=project.receiver_port) as sink:
        web.post_json("/api/send", {"mail_from": "bob@example.org", "to": ["a@test.com", "b@test.com"],
                                    "subject": "Two", "body": ""})
        wait_for(lambda: sink.messages, 10, 0.05, "the sink to receive the message")
    assert sink.messages[0].rcpt_tos == ["a@test.com", "b@test.com"]
    assert "In-Reply-To" not in message_from_bytes(sink.messages[0].data, policy=default)


def test_send_refuses_bad_input_and_reports_the_receiver(web: WebServer) -> None:
    good = {"mail_from": "bob@example.org", "to": "hello@test.com", "subject": "Hi", "body": "x"}
    injections = [
        {**good, "subject": "Hi\r\nBcc: victim@example.org"},
        {**good, "subject": "Hi\nX-Evil: 1"},
        {**good, "mail_from": "bob@example.org\r\nBcc: victim@example.org"},
        {**good, "to": "hello@test.com\nBcc: victim@example.org"},
        {**good, "to": "hello@test.com, victim@example.org"},
        {**good, "mail_from": "a@b.c, d@e.f"},
        {**good, "mail_from": "not an address"},
        {**good, "to": []},
        {**good, "to": 5},
        {**good, "body": 5},
        {**good, "in_reply_to": "queue/nosuchkey"},
        "just a string",
    ]
    with smtp_sink(port=web.project.receiver_port) as sink:
        for payload in injections:
            reply = web.post("/api/send", payload)
            assert reply.status == 400, (payload, reply.body)
            assert reply.json()["error"]
        bad_json = web.request("POST", "/api/send", b"{not json", {"X-CSRF-Token": web.csrf,
                                                                  "Content-Type": "application/json"})
        assert bad_json.status == 400
        huge = web.post("/api/send", {**good, "body": "x" * (13 * 1024 * 1024)})
        assert huge.status == 413 and huge.json()["error"]
        assert sink.messages == [] and sink.attempts == 0
    assert not (web.project.root / "run" / "web-sent" / "new").exists() or \
        maildir.keys(web.project.root / "run" / "web-sent") == []

    with smtp_sink(port=web.project.receiver_port, rcpt_replies={"hello@test.com": "550 5.1.1 no such user"}):
        refused = web.post("/api/send", good)
        assert refused.status == 502 and refused.json()["error"] == "the receiver refused: 550 5.1.1 no such user"
    unreachable = web.post("/api/send", good)  # the sink has stopped: nothing listens on the receiver's port
    assert unreachable.status == 503 and "not reachable" in unreachable.json()["error"]
    assert maildir.keys(web.project.root / "run" / "web-sent") == [] if \
        (web.project.root / "run" / "web-sent").exists() else True


def read_events(web: WebServer, count: int, timeout: float, trigger: list[bytes]) -> list[dict[str, object]]:
    """Open the event stream, deliver ``trigger`` into run/queue once connected, collect ``count`` message events."""
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=timeout)
    try:
        conn.request("GET", "/api/events")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("content-type", "").startswith("text/event-stream")
        assert response.readline().startswith(b"retry:")  # connected: the hub knows this client
        for data in trigger:
            web.project.deliver("queue", data)
        found: list[dict[str, object]] = []
        event = ""
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            line = response.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "message":
                found.append(json.loads(line[6:]))
        return found
    finally:
        conn.close()


def test_events_announce_new_messages_live(web: WebServer) -> None:
    # Mail that arrived before the server started is no news, even when it is first indexed later.
    web.project.deliver("queue", plain("hello@test.com", "old@example.org", "Old news", "old\n"),
                        key=f"{int(time.time()) - 3600}.M1P1Q1.earlier")
    events = read_events(web, 2, 20, [plain("hello@test.com", "bob@example.org", f"Live {i}", "x\n") for i in range(2)])
    assert len(events) == 2
    assert {e["mailbox"] for e in events} == {"queue"}
    assert all(e["id"] == f"queue/{e['key']}" for e in events)
    subjects = sorted(e["summary"]["subject"] for e in events)  # type: ignore[index]
    assert subjects == ["Live 0", "Live 1"]
    # The stream's client went away: the server dropped it and still answers.
    wait_for(lambda: web.get("/api/session").status == 200, 10, 0.1, "the server to answer")


def test_converse_with_the_demo_application(web_pipeline: WebPipeline) -> None:
    """Send from the API as a user; the demo application's reply arrives in ``queue``, threaded with ours."""
    web = web_pipeline
    sent = web.post_json("/api/send", {"mail_from": "Ann <ann-api@example.org>", "to": "hello@test.com",
                                       "subject": "API conversation", "body": "Hello there."})

    def reply() -> list[dict[str, object]]:
        found: list[dict[str, object]] = web.get_json("/api/messages?mailbox=queue&q=to:ann-api")["messages"]
        return found

    replies = wait_for(reply, 60, 0.3, "the application's reply in the queue mailbox")
    assert replies[0]["subject"] == "Re: API conversation" and replies[0]["from_app"] is True
    detail = web.get_json(f"/api/messages/{replies[0]['id']}")
    assert [m["id"] for m in detail["thread"]] == [sent["id"], replies[0]["id"]]
    assert detail["reply"]["mail_from"] == "ann-api@example.org" and detail["reply"]["to"] == "hello@test.com"

    # Answer the reply as the user: the application answers again, and the thread has all four.
    again = web.post_json("/api/send", {"mail_from": detail["reply"]["mail_from"], "to": detail["reply"]["to"],
                                        "subject": detail["reply"]["subject"], "body": "And again.",
                                        "in_reply_to": replies[0]["id"]})
    wait_for(lambda: len(reply()) == 2, 60, 0.3, "the second reply")
    thread = web.get_json(f"/api/messages/{again['id']}")["thread"]
    assert [m["mailbox"] for m in thread] == ["sent", "queue", "sent", "queue"]


def test_event_clients_that_go_away_are_dropped(tmp_path: Path) -> None:
    """In-process (uvicorn in a thread) so the hub's subscribers can be counted: one poller, many
    clients, and each client's subscription ends when it disconnects."""
    import threading
    from types import SimpleNamespace

    import uvicorn

    from lamson.settings import DEFAULTS
    from lamson.typed_settings import Settings
    from lamson.web.app import create_app
    from lamson.web.context import WebContext
    from tests.support import free_port

    ctx = WebContext(settings=Settings.of(SimpleNamespace(**DEFAULTS)), root=tmp_path, conn=None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    conns: list[http.client.HTTPConnection] = []
    responses: list[http.client.HTTPResponse] = []
    try:
        wait_for(lambda: server.started or not thread.is_alive(), 30, what="uvicorn to start")
        hub = ctx.services["events"]
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/api/events")
            response = conn.getresponse()
            assert response.readline().startswith(b"retry:")
            conns.append(conn)
            responses.append(response)
        assert len(hub.subscribers) == 3
        maildir.write(maildir.ensure(tmp_path / "run" / "queue"), plain("a@test.com", "b@example.org", "x", "y\n"))
        for response in responses:  # every client gets it, from the one poller
            lines = [response.readline() for _ in range(3)]  # ": connected", "", then the event
            assert lines[1:] == [b"\n", b"event: message\n"], lines
        for conn in conns[:2]:
            conn.close()
        wait_for(lambda: len(hub.subscribers) == 1, 20, 0.1, "the two closed clients to be dropped")
    finally:
        for conn in conns:
            conn.close()
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive()
    assert "mail_index" not in ctx.services  # closed with the application
