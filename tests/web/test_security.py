"""``lamson web`` is safe by default (issue 23, item 6): attacks tried against a real server process.

Hostile HTML (a script, an ``onerror`` handler, a remote image) comes out of the HTML endpoint
without any of them, under a policy that forbids scripts; POSTs without the CSRF token or from
another origin are refused; a foreign Host name (DNS rebinding) is refused; with a password every
request needs it; binding beyond loopback without one is refused; pages carry their policy.
"""

from __future__ import annotations

import base64
import re
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import pytest

from lamson.settings import DEFAULTS
from lamson.typed_settings import Settings
from lamson.web import security
from lamson.web.message import sanitize_html
from tests.support import BIN, free_port, run_lamson
from tests.web.conftest import WebProject, WebServer, new_project, start_web, web_env

HOSTILE_HTML = (
    "<html><head><script>parent.__ran = 1</script><style>body{background:url(http://evil.example/bg.png)}</style>"
    "<base href='http://evil.example/'><meta http-equiv='refresh' content='0;url=http://evil.example/'></head>"
    "<body onload='steal()'><h1 style=\"color:red;background-image:url('http://evil.example/x.png')\">Hi</h1>"
    "<img src='http://tracker.example/pixel.gif' alt='pixel'>"
    "<img src=x onerror=\"alert('onerror ran')\">"
    "<a href='javascript:alert(1)'>js link</a><a href=' jav&#x09;ascript:alert(2)'>obfuscated</a>"
    "<a href='https://example.org/ok'>fine link</a>"
    "<iframe src='http://evil.example/frame'></iframe><object data='x.swf'></object>"
    "<form action='http://evil.example/'><input name=p></form><svg onload=alert(3)></svg>"
    "<img src='cid:logo@x' alt='inline'><p>The end.</p></body></html>"
)


def hostile_message() -> bytes:
    msg = EmailMessage()
    msg["From"] = "hello@test.com"
    msg["To"] = "bob@example.org"
    msg["Subject"] = "Hostile HTML"
    msg.set_content("text part")
    msg.add_alternative(HOSTILE_HTML, subtype="html")
    html_part = list(msg.iter_parts())[1]
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(b"\x89PNG\r\n\x1a\nfake", maintype="image", subtype="png", cid="<logo@x>")
    return msg.as_bytes()


def test_hostile_html_is_served_without_scripts_handlers_or_remote_images(web: WebServer) -> None:
    key = web.project.deliver("queue", hostile_message())
    reply = web.get(f"/api/messages/queue/{key}/html")
    assert reply.status == 200 and reply.headers["content-type"] == "text/html; charset=utf-8"
    body = reply.body.decode()
    for forbidden in ("<script", "parent.__ran", "onerror", "onload", "javascript:", "alert(", "tracker.example",
                      "evil.example", "<iframe", "<object", "<form", "<input", "<base", "<meta http-equiv", "<svg"):
        assert forbidden not in body.lower(), forbidden
    assert "<h1" in body and "fine link" in body and 'href="https://example.org/ok"' in body
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="inline"', body)  # cid: inlined
    csp = reply.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "default-src 'none'" in csp and "img-src data:;" in csp
    assert "script-src" not in csp and "frame-ancestors 'self'" in csp
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["x-frame-options"] == "SAMEORIGIN"
    assert reply.headers["x-lamson-blocked-images"] == "2"

    # Asked for: remote images come back (still no script), the policy lets the frame load them.
    shown = web.get(f"/api/messages/queue/{key}/html?images=1")
    assert "http://tracker.example/pixel.gif" in shown.body.decode()
    assert "onerror" not in shown.body.decode() and "<script" not in shown.body.decode()
    assert "img-src data: http: https:" in shown.headers["content-security-policy"]

    # Parts are downloads, never pages, whatever they claim to be.
    for path in ("1", "2.1", "2.2"):
        part = web.get(f"/api/messages/queue/{key}/parts/{path}")
        assert part.status == 200
        assert part.headers["content-disposition"].startswith("attachment")
        assert not part.headers["content-type"].startswith("text/html")


def test_sanitiser_edge_cases() -> None:
    cleaned = sanitize_html("<a href='data:text/html,<script>x</script>'>d</a><img src='data:image/png;base64,AA=='>"
                            "<img src='//evil.example/x.png'><p style='width:1px'>k</p>", images=False)
    assert "data:text/html" not in cleaned.document and "evil.example" not in cleaned.document
    assert 'src="data:image/png;base64,AA=="' in cleaned.document and 'style="width:1px"' in cleaned.document


def test_posts_need_the_csrf_token_and_our_own_origin(web: WebServer) -> None:
    payload = {"mail_from": "bob@example.org", "to": "hello@test.com", "subject": "x", "body": "x"}
    missing = web.post("/api/send", payload, csrf=False)
    assert missing.status == 403 and "CSRF" in missing.json()["error"]
    wrong = web.post("/api/send", payload, headers={"X-CSRF-Token": "guessed"})
    assert wrong.status == 403
    foreign = web.post("/api/send", payload, headers={"Origin": "http://evil.example"})
    assert foreign.status == 403 and "origin" in foreign.json()["error"]
    other_port = web.post("/api/send", payload, headers={"Origin": f"http://127.0.0.1:{web.port + 1}"})
    assert other_port.status == 403
    null_origin = web.post("/api/send", payload, headers={"Origin": "null"})
    assert null_origin.status == 403
    # The right token from our own page gets past the check (the receiver is not running: 503, not 403).
    assert web.post("/api/send", payload).status == 503
    no_origin = web.post("/api/send", payload, headers={"Origin": ""})
    assert no_origin.status in (403, 503)
    # The token comes from the session endpoint and the cookie, SameSite=Strict.
    session = web.get("/api/session")
    assert session.json()["csrf"] == web.csrf
    assert session.headers["set-cookie"] == f"lamson_csrf={web.csrf}; Path=/; SameSite=Strict"


def test_dns_rebinding_host_names_are_refused(web: WebServer) -> None:
    assert web.get("/api/session", headers={"Host": "evil.example"}).status == 403
    assert web.get("/", headers={"Host": f"evil.example:{web.port}"}).status == 403
    assert web.get("/api/session", headers={"Host": f"localhost:{web.port}"}).status == 200
    assert web.get("/api/session", headers={"Host": f"[::1]:{web.port}"}).status == 200


def test_headers_of_pages_and_api(web: WebServer) -> None:
    page = web.get("/")
    assert page.status == 200 and b"<html" in page.body
    assert page.headers["content-security-policy"] == security.PAGE_CSP
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["set-cookie"].startswith("lamson_csrf=")
    api = web.get("/api/mailboxes")
    assert api.headers["cache-control"] == "no-store" and api.headers["x-frame-options"] == "DENY"
    static = web.get("/static/index.html")
    assert static.headers["content-security-policy"] == security.PAGE_CSP


def test_with_a_password_every_request_needs_it(tmp_path: Path, redis_url: str) -> None:
    project = new_project(tmp_path / "project", redis_url, extra='web_password = "s3cret pass"')
    with start_web(project) as server:
        for path in ("/", "/api/session", "/api/mailboxes", "/static/app.js"):
            refused = server.get(path)
            assert refused.status == 401, path
            assert refused.headers["www-authenticate"].startswith("Basic")
        wrong = "Basic " + base64.b64encode(b"dev:wrong").decode()
        assert server.get("/api/session", headers={"Authorization": wrong}).status == 401
        assert server.get("/api/session", headers={"Authorization": "Bearer s3cret pass"}).status == 401
        server.password = "s3cret pass"
        assert server.get("/api/session").status == 200
        server.csrf = server.get_json("/api/session")["csrf"]
        # The password does not stand in for the CSRF token.
        assert server.post("/api/send", {}, csrf=False).status == 403
        assert server.post("/api/send", {}).status == 400


def test_binding_beyond_loopback_is_refused_without_a_password(web_project: WebProject) -> None:
    port = str(free_port())
    for host in ("0.0.0.0", "::", "192.0.2.1"):
        done = run_lamson("web", "-host", host, "-port", port, cwd=web_project.root, env=web_env(), timeout=60)
        assert done.returncode == 1, done
        assert b"refusing to listen on" in done.stderr and b"web_password" in done.stderr
    # The environment's address is refused the same way.
    done = run_lamson("web", "-port", port, cwd=web_project.root, env=web_env(LAMSON_WEB_HOST="0.0.0.0"), timeout=60)
    assert done.returncode == 1 and b"refusing" in done.stderr


def test_bind_rules_and_token_file(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"):
        assert security.is_loopback(host), host
        assert security.bind_refusal(host, None) is None
    for host in ("0.0.0.0", "::", "", "192.168.1.5", "example.org", "localhost.example.org"):
        assert not security.is_loopback(host), host
        assert security.bind_refusal(host, None)
        assert security.bind_refusal(host, "pw") is None
    with pytest.raises(Exception, match="refusing to listen"):
        security.check_bind("0.0.0.0", None)

    settings = Settings.of(SimpleNamespace(**{**DEFAULTS, "run_dir": "run"}))
    assert security.password_for(settings, tmp_path) is None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "web.token").write_text("  \n")
    assert security.password_for(settings, tmp_path) is None  # empty: no password
    (tmp_path / "run" / "web.token").write_text("from-the-file\n")
    assert security.password_for(settings, tmp_path) == "from-the-file"
    with_setting = Settings.of(SimpleNamespace(**{**DEFAULTS, "web_password": "from-settings"}))
    assert security.password_for(with_setting, tmp_path) == "from-settings"

    assert security.basic_password("Basic " + base64.b64encode(b"any:pw:with:colons").decode()) == "pw:with:colons"
    for bad in (None, "", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), "Digest x"):
        assert security.basic_password(bad) is None


def test_lamson_check_warns_when_web_is_exposed(tmp_path: Path) -> None:
    local = SimpleNamespace(**DEFAULTS)
    assert security.exposure_findings(local, tmp_path) == []
    exposed = SimpleNamespace(**{**DEFAULTS, "web_config": {"host": "0.0.0.0", "port": 8880}})
    (finding,) = security.exposure_findings(exposed, tmp_path)
    assert "0.0.0.0" in finding and "refuses to start" in finding
    guarded = SimpleNamespace(**{**DEFAULTS, "web_config": {"host": "0.0.0.0", "port": 8880}, "web_password": "x"})
    (finding,) = security.exposure_findings(guarded, tmp_path)
    assert "password" in finding and "refuses" not in finding


def test_the_command_is_in_the_cli(web_project: WebProject) -> None:
    done = run_lamson("help", "-for", "web", cwd=web_project.root, env=web_env())
    assert done.returncode == 0 and b"lamson web" in done.stdout and b"-wait-for-port" in done.stdout
    assert (BIN / "lamson").exists()


def test_hostile_mail_never_breaks_the_api(web: WebServer) -> None:
    deep = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(3000))
    nested = b"".join(b'--o\r\nContent-Type: multipart/mixed; boundary="o"\r\n\r\n' for _ in range(60))
    samples = [
        b"From: a@b.c\r\nSubject: =?x-bogus?q?hi?=\r\nContent-Type: text/html; charset=x-bogus\r\n\r\n<p>\xff\xfe</p>\r\n",
        b"From: a@b.c\r\nSubject: " + b"y" * 300_000 + b"\r\n\r\nhuge header\r\n",
        b"From: a@b.c\r\nSubject: deep\r\n" + deep,
        b'From: a@b.c\r\nContent-Type: multipart/mixed; boundary="o"\r\n\r\n' + nested,
        bytes(range(256)) * 50,
        b"",
        b"From: a@b.c\r\nContent-Type: image/svg+xml\r\nContent-ID: <s>\r\n\r\n<svg onload=alert(1)/>\r\n",
        b"From: a@b.c\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n!!notbase64\r\n",
    ]
    keys = [web.project.deliver("queue", data) for data in samples]
    assert web.get_json("/api/messages?mailbox=queue")["total"] == len(samples)
    for key in keys:
        detail = web.get(f"/api/messages/queue/{key}")
        assert detail.status == 200, (key, detail.body[:300])
        parts = detail.json()["parts"]
        for path in ("1", "1.1", "2"):
            assert web.get(f"/api/messages/queue/{key}/parts/{path}").status in (200, 404)
        assert web.get(f"/api/messages/queue/{key}/html").status in (200, 404)
        assert web.get(f"/api/messages/queue/{key}/raw").status == 200
        assert isinstance(parts, list)
    # Nesting is walked to a bound, not to the bottom.
    nested_detail = web.get_json(f"/api/messages/queue/{keys[3]}")

    def depth(nodes: list[dict[str, object]]) -> int:
        return 1 + max((depth(n["children"]) for n in nodes), default=0)  # type: ignore[arg-type]

    assert depth(nested_detail["parts"]) <= 26
