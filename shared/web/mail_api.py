"""The mail half of the JSON API: session, mailboxes, messages, search, send, live events (docs/web.md).

Every handler works from the :class:`~lamson.web.context.WebContext` it was built with; blocking
work (the index, files, SMTP) runs in Starlette's thread pool so the event loop keeps serving the
event streams. Errors are ``{"error": "sentence"}`` with a 4xx/5xx status.

Message URLs are ``/api/messages/{mailbox}/{key}[/raw|/html|/parts/{path}]``; a mailbox found under
``run/`` may be named with a slash (``queues/posts``), so the mailbox is matched against the known
names rather than taken as one path segment.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

import lamson
from lamson import maildir
from lamson.web import compose, events, mailboxes
from lamson.web import message as mime
from lamson.web.context import WebContext
from lamson.web.index import REQUEST_BUDGET, BadQuery, Index, Row, index_path, parse_bytes
from lamson.web.mailboxes import Mailbox
from lamson.web.security import csrf_cookie

MAX_LIMIT = 500
#: Largest JSON body ``POST /api/send`` reads (the body text is limited by lamson.web.compose too).
MAX_SEND_BYTES = 12 * 1024 * 1024
#: Seconds before the server's start that still count as news for the event stream.
NEWS_MARGIN = 2.0

#: The frame policy of a message's sanitised HTML: no script, nothing fetched (``data:`` images only).
HTML_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
HTML_CSP_IMAGES = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data: http: https:; "
                   "frame-ancestors 'self'")

class ApiError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


def get_index(ctx: WebContext) -> Index:
    """The process's mail index (``run/web-index.sqlite``), opened on first use."""
    with ctx.lock:
        found = ctx.services.get("mail_index")
        if found is None:
            found = Index(index_path(ctx.path(ctx.settings.run_dir)))
            ctx.services["mail_index"] = found
        return found


def refresh(ctx: WebContext, budget: float | None = REQUEST_BUDGET) -> list[Mailbox]:
    """Bring the index up to date, spending at most about ``budget`` seconds (a request's share; the
    events poller passes None and finishes the job); return the mailboxes."""
    boxes = mailboxes.discover(ctx, fresh=True)
    get_index(ctx).refresh(boxes, budget)
    return boxes


def from_app(ctx: WebContext, name: str) -> bool:
    box = mailboxes.by_name(ctx, name)
    return box is not None and box.from_app


def summary(ctx: WebContext, row: Row) -> dict[str, Any]:
    return row.summary(from_app(ctx, row.mailbox))


def hub(ctx: WebContext) -> events.Hub:
    """The process's event poller (lamson.web.events), created on first use."""
    found = ctx.services.get("events")
    if found is None:
        # News is mail that arrived after the server started: the first indexing of a full Maildir
        # (or of what came while the server was down) announces nothing, however long it takes.
        news_since = time.time() - NEWS_MARGIN

        def added_since(last: int) -> tuple[int, list[dict[str, Any]]]:
            rows = get_index(ctx).since(last)
            return (rows[-1].id if rows else last,
                    [{"id": f"{r.mailbox}/{r.key}", "mailbox": r.mailbox, "key": r.key, "summary": summary(ctx, r)}
                     for r in rows if r.timestamp >= news_since])

        found = events.Hub(lambda: refresh(ctx, None), added_since, lambda: get_index(ctx).last_id())
        ctx.services["events"] = found
    return found


# --- handlers --------------------------------------------------------------------------------------

def routes(ctx: WebContext) -> list[BaseRoute]:
    """The mail routes of :func:`lamson.web.app.create_app`."""

    async def session(request: Request) -> Response:
        response = JSONResponse({"csrf": ctx.csrf_token, "version": lamson.__version__,
                                 "app": ctx.services.get("app_name") or ctx.root.name})
        response.headers["set-cookie"] = csrf_cookie(ctx.csrf_token)
        return response

    async def list_mailboxes(request: Request) -> Response:
        def work() -> list[dict[str, Any]]:
            boxes = refresh(ctx)
            counts = get_index(ctx).counts()
            return [{"name": b.name, "title": b.title, "path": str(b.path), "kind": b.kind,
                     "count": counts.get(b.name, 0)} for b in boxes]

        found = await run_in_threadpool(work)
        return JSONResponse({"mailboxes": found, "indexing": get_index(ctx).pending()})

    async def list_messages(request: Request) -> Response:
        params = request.query_params
        name = params.get("mailbox") or "all"
        try:
            limit = int(params.get("limit") or 50)
        except ValueError:
            return error(400, "limit must be a number")
        if not 1 <= limit <= MAX_LIMIT:
            return error(400, f"limit must be from 1 to {MAX_LIMIT}")
        q = params.get("q") or ""
        if len(q) > 1000:
            return error(400, "the search is longer than 1000 characters")

        def work() -> dict[str, Any]:
            boxes = refresh(ctx)
            if name != "all" and name not in {b.name for b in boxes}:
                raise ApiError(404, f"no mailbox {name!r}")
            page = get_index(ctx).query(None if name == "all" else [name], q, limit, params.get("before") or None)
            apps = {b.name for b in boxes if b.from_app}
            return {"messages": [r.summary(r.mailbox in apps) for r in page.rows], "total": page.total,
                    "next": page.next, "took_ms": page.took_ms, "indexing": get_index(ctx).pending()}

        try:
            return JSONResponse(await run_in_threadpool(work))
        except ApiError as exc:
            return error(exc.status, str(exc))
        except BadQuery as exc:
            return error(400, str(exc))

    async def message_routes(request: Request) -> Response:
        rest: str = request.path_params["rest"]
        try:
            box, key, action, part = split_message_path(ctx, rest)
            if action == "":
                return JSONResponse(await run_in_threadpool(detail, ctx, box, key))
            if action == "raw":
                path = locate(box, key)
                download = request.query_params.get("download") == "1"
                return FileResponse(path, media_type="text/plain; charset=utf-8",
                                    filename=f"{key}.eml" if download else None,
                                    headers={"X-Content-Type-Options": "nosniff"})
            if action == "html":
                return await run_in_threadpool(html_part, box, key, request.query_params.get("images") == "1")
            return await run_in_threadpool(part_download, box, key, part)
        except ApiError as exc:
            return error(exc.status, str(exc))

    async def send(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_SEND_BYTES:
                return error(413, f"the message is larger than {MAX_SEND_BYTES // (1024 * 1024)} MB")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return error(400, "the body must be JSON")
        try:
            draft = compose.draft_from(payload)
            thread_of = payload.get("in_reply_to")
            if thread_of:
                if not isinstance(thread_of, str):
                    return error(400, "in_reply_to must be a message id such as queue/KEY")
                box, key, action, _ = split_message_path(ctx, thread_of)
                if action:
                    return error(400, "in_reply_to must be a message id such as queue/KEY")
                original = await run_in_threadpool(read_head, box, key)
                fields = mime.reply_fields(original)
                draft = replace(draft, in_reply_to=fields["in_reply_to"], references=fields["references"])
            sent_dir = ctx.path(ctx.settings.run_dir) / mailboxes.SENT_DIR
            result = await run_in_threadpool(compose.send, draft, ctx.receiver, sent_dir)
        except compose.ComposeError as exc:
            return error(exc.status, str(exc))
        except ApiError as exc:
            return error(400 if exc.status == 404 else exc.status, f"in_reply_to: {exc}")
        return JSONResponse({"ok": True, "id": f"sent/{result.key}",
                             "message_id": result.message_id, "reply": result.reply})

    async def event_stream(request: Request) -> Response:
        return events.stream(hub(ctx), request)

    return [
        Route("/api/session", session),
        Route("/api/mailboxes", list_mailboxes),
        Route("/api/messages", list_messages),
        Route("/api/messages/{rest:path}", message_routes),
        Route("/api/send", send, methods=["POST"]),
        Route("/api/events", event_stream),
    ]


# --- message helpers -------------------------------------------------------------------------------

def split_message_path(ctx: WebContext, rest: str) -> tuple[Mailbox, str, str, str]:
    """``MAILBOX/KEY[/raw|/html|/parts/PATH]`` → ``(mailbox, key, action, part path)``; ApiError(404) if unknown."""
    boxes = sorted(mailboxes.discover(ctx), key=lambda b: len(b.name), reverse=True)
    for box in boxes:
        if not rest.startswith(box.name + "/"):
            continue
        tail = rest[len(box.name) + 1:].split("/")
        key, more = tail[0], tail[1:]
        try:
            maildir.check_key(key)
        except maildir.BadKey:
            raise ApiError(404, f"not a message key: {key!r}") from None
        if not more:
            return box, key, "", ""
        if more in (["raw"], ["html"]):
            return box, key, more[0], ""
        if len(more) == 2 and more[0] == "parts" and re.fullmatch(r"\d{1,4}(\.\d{1,4}){0,30}", more[1]):
            return box, key, "parts", more[1]
        raise ApiError(404, f"no such page: /api/messages/{rest}")
    raise ApiError(404, f"no mailbox for {rest!r}")


def locate(box: Mailbox, key: str) -> Path:
    try:
        found = maildir.locate(box.path, key)
    except maildir.BadKey as exc:
        raise ApiError(404, str(exc)) from None
    if found is None:
        raise ApiError(404, f"no message {key!r} in {box.name}")
    return found


def read(box: Mailbox, key: str, limit: int = mime.PARSE_LIMIT) -> tuple[bytes, Path]:
    path = locate(box, key)
    try:
        with open(path, "rb") as handle:
            return handle.read(limit), path
    except OSError as exc:
        raise ApiError(404, f"cannot read {box.name}/{key}: {exc.strerror or exc}") from None


def read_head(box: Mailbox, key: str) -> Any:
    return mime.parse(read(box, key, 512 * 1024)[0])


def detail(ctx: WebContext, box: Mailbox, key: str) -> dict[str, Any]:
    """Summary + headers, text, MIME tree, thread and reply fields of one message."""
    data, path = read(box, key)
    index = get_index(ctx)
    row = index.get(box.name, key)
    if row is None:
        refresh(ctx)
        row = index.get(box.name, key)
    if row is not None:
        result = summary(ctx, row)
        thread = [summary(ctx, r) for r in index.thread(row)]
    else:  # not indexed (yet): the same fields, from the file
        st = path.stat()
        fields = parse_bytes(data, path.name, st.st_size, st.st_mtime).fields
        result = {"id": f"{box.name}/{key}", "mailbox": box.name, "key": key, "date": fields["date"],
                  "timestamp": fields["timestamp"], "from": fields["sender"], "to": fields["recipients"],
                  "subject": fields["subject"], "snippet": fields["snippet"], "size": fields["size"],
                  "message_id": fields["message_id"], "in_reply_to": fields["in_reply_to"],
                  "has_html": bool(fields["has_html"]), "attachments": fields["attachments"],
                  "from_app": box.from_app, "reason": fields["reason"]}
        thread = [result]
    msg = mime.parse(data)
    result.update({
        "headers": mime.headers_list(msg),
        "cc": mime.header(msg, "Cc"),
        "reply_to": mime.header(msg, "Reply-To"),
        "text": mime.text_of(msg),
        "html": mime.first_body(msg, "text/html") is not None,
        "parts": mime.tree(msg),
        "thread": thread,
        "reply": mime.reply_fields(msg),
    })
    return result


def html_part(box: Mailbox, key: str, images: bool) -> Response:
    """The sanitised HTML document, under the sandboxing policy (framed by our page only)."""
    data, _ = read(box, key)
    cleaned = mime.html_document(mime.parse(data), images=images)
    if cleaned is None:
        raise ApiError(404, f"{box.name}/{key} has no HTML part")
    return Response(cleaned.document, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": HTML_CSP_IMAGES if images else HTML_CSP,
        "X-Frame-Options": "SAMEORIGIN",
        "X-Content-Type-Options": "nosniff",
        "X-Lamson-Blocked-Images": str(cleaned.blocked_images),
    })


_SAFE_TYPE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,60}/[a-z0-9][a-z0-9.+-]{0,80}$")


def part_download(box: Mailbox, key: str, path: str) -> Response:
    """One MIME part's decoded bytes, always as a download."""
    data, _ = read(box, key)
    part = mime.find_part(mime.parse(data), path)
    if part is None:
        raise ApiError(404, f"{box.name}/{key} has no part {path}")
    if part.is_multipart():
        raise ApiError(404, f"part {path} of {box.name}/{key} is a container: download the parts inside it")
    ctype = mime.content_type(part)
    if not _SAFE_TYPE.match(ctype) or any(w in ctype for w in ("html", "xml", "svg", "javascript")):
        ctype = "application/octet-stream"
    name = mime.filename(part) or f"part-{path}"
    ascii_name = re.sub(r'[^A-Za-z0-9._ -]', "_", name)[:120] or f"part-{path}"
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name[:200], safe='')}"
    return Response(mime.payload_bytes(part), media_type=ctype, headers={
        "Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"})
