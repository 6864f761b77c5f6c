"""The Starlette application of ``lamson web``: the JSON API, the page, and the security around them.

:func:`create_app` is the only entry point: ``lamson web`` (lamson.cli.webcmd) serves what it returns
with uvicorn, and tests can build one per temporary project. Routes: the mail API
(lamson.web.mail_api), the pipeline API (lamson.web.pipeline_api), ``/static`` (the page's own
scripts and styles; nothing is fetched from elsewhere) and ``GET /`` (the page). Around them,
lamson.web.security's middleware (password, Host, CSRF and Origin checks, security headers). Its
lifespan starts the background tasks, one each per process: the mail poller behind
``/api/events`` and the pipeline's rate sampler.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from lamson.web import mail_api, pipeline_api
from lamson.web.context import WebContext
from lamson.web.security import SecurityMiddleware, csrf_cookie, is_loopback

log = logging.getLogger("lamson.web")

STATIC = Path(__file__).resolve().parent / "static"


def create_app(ctx: WebContext, *, bind_host: str = "127.0.0.1") -> Starlette:
    """The web application for ``ctx``'s project.

    ``bind_host``: the address the server listens on; on a loopback address without a password,
    requests must name a loopback host (lamson.web.security: DNS rebinding).
    """
    routes: list[BaseRoute] = [*mail_api.routes(ctx), *pipeline_api.routes(ctx)]

    async def page(request: Request) -> Response:
        response = FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")
        response.headers["set-cookie"] = csrf_cookie(ctx.csrf_token)
        response.headers["cache-control"] = "no-store"
        return response

    async def not_found(request: Request) -> Response:
        return JSONResponse({"error": f"nothing at {request.url.path}"}, status_code=404)

    routes += [Route("/", page), Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
               Route("/api/{rest:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(pipeline_api.lifespan(ctx))  # the rate sampler
            hub = mail_api.hub(ctx)
            hub.start()
            stack.push_async_callback(hub.stop)
            yield
        index = ctx.services.pop("mail_index", None)
        if index is not None:
            index.close()

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return JSONResponse({"error": str(detail)}, status_code=status)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("lamson web: %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    middleware = [Middleware(SecurityMiddleware, csrf_token=ctx.csrf_token, password=ctx.password,
                             loopback_only=is_loopback(bind_host))]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                     exception_handlers={HTTPException: http_error, Exception: server_error})
