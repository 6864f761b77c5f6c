"""The pipeline API of ``lamson web``: programs, stages, queues and workers, conversation states,
parked mail (with requeue) and live rates, as JSON under ``/api/pipeline`` (docs/design.md, "The
pipeline").

Each fact comes from where Lamson keeps it (:mod:`lamson.web.pipeline_facts` says where); this module
only runs those readers in worker threads, each under a time limit, and turns what they raise into
answers: a Redis or supervisord that does not answer is part of the answer (``redis.ok`` false,
``programs`` null with ``programs_error``), never a 500 nor a request that hangs. POSTs are checked
for CSRF by the application's middleware (lamson.web.security), not here.

The rate sampler runs for the application's lifetime: :func:`lifespan` (or :func:`start` /
:func:`stop`), which ``lamson.web.app.create_app`` enters in its Starlette lifespan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import redis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lamson.web import pipeline_facts as facts
from lamson.web.context import WebContext
from lamson.web.pipeline_rates import SERIES, lifespan, rates_of, start, stop

__all__ = ["lifespan", "routes", "start", "stop"]

T = TypeVar("T")

#: Seconds a reader may take before the answer goes without it (a restart waits for the program).
TIMEOUT = 5.0
RESTART_TIMEOUT = 90.0
#: The longest window of rates asked for (the sampler keeps 15 minutes).
MAX_MINUTES = 15.0


async def blocking(func: Callable[..., T], *args: Any, timeout: float = TIMEOUT) -> T:
    """``func(*args)`` in a worker thread; TimeoutError after ``timeout`` seconds (the thread is left to
    finish on its own: Redis and XML-RPC calls have their own socket time limits)."""
    with anyio.fail_after(timeout):
        return await anyio.to_thread.run_sync(partial(func, *args), abandon_on_cancel=True)


def error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


def failure(exc: Exception) -> JSONResponse:
    """What a reader's exception means to the client."""
    if isinstance(exc, facts.NotFound):
        return error(404, str(exc))
    if isinstance(exc, facts.Refused):
        return error(400, str(exc))
    if isinstance(exc, facts.Unavailable):
        return error(503, str(exc))
    if isinstance(exc, TimeoutError):
        return error(503, "no answer in time (Redis or supervisord is too slow)")
    raise exc


async def _or_error(func: Callable[..., T], *args: Any, timeout: float = TIMEOUT) -> tuple[T | None, str | None]:
    """The result, or None and why not (the page shows what it has and says what it lacks)."""
    try:
        return await blocking(func, *args, timeout=timeout), None
    except TimeoutError:
        return None, f"no answer within {timeout:g} s"
    except Exception as exc:
        return None, facts.one_line(exc)


def routes(ctx: WebContext) -> list[BaseRoute]:
    """The pipeline endpoints, bound to ``ctx`` (create_app mounts them)."""

    async def overview(request: Request) -> Response:
        status, why = await _or_error(facts.redis_status, ctx)
        redis_ok, redis_error = status if status is not None else (False, f"Redis: {why}")
        programs, programs_error = await _or_error(facts.programs, ctx)
        parked, parked_error = await _or_error(facts.parked, ctx)
        by_group = Counter(parked["by_group"]) if parked else Counter[str]()
        found, stages_error = await _or_error(facts.stages, ctx, redis_ok, by_group)
        stages, problems = found if found is not None else ([], [stages_error or "unknown"])
        queues: list[dict[str, Any]] | None = None
        workers: list[dict[str, Any]] | None = None
        rq_error: str | None = "Redis is not reachable" if not redis_ok else None
        if redis_ok:
            both, rq_error = await _or_error(facts.queues_and_workers, ctx)
            if both is not None:
                queues, workers = both
        body: dict[str, Any] = {
            "programs": programs, "stages": stages, "queues": queues, "workers": workers,
            "redis": {"ok": redis_ok, "error": redis_error},
        }
        if programs is None:
            body["programs_error"] = programs_error
        if problems or parked_error:
            body["stages_error"] = "; ".join(problems + ([f"parked: {parked_error}"] if parked_error else []))
        if rq_error:
            body["queues_error"] = rq_error
        return JSONResponse(body)

    async def states(request: Request) -> Response:
        try:
            return JSONResponse(await blocking(facts.states, ctx))
        except (facts.Unavailable, TimeoutError) as exc:
            return failure(exc)
        except (redis.RedisError, OSError) as exc:
            return error(503, f"Redis does not answer: {facts.one_line(exc)}")

    async def parked(request: Request) -> Response:
        try:
            return JSONResponse(await blocking(facts.parked, ctx))
        except (facts.NotFound, facts.Refused, facts.Unavailable, TimeoutError) as exc:
            return failure(exc)

    async def requeue(request: Request) -> Response:
        mailbox, key = request.path_params["mailbox"], request.path_params["key"]
        try:
            return JSONResponse(await blocking(facts.requeue, ctx, mailbox, key))
        except (facts.NotFound, facts.Refused, facts.Unavailable, TimeoutError) as exc:
            return failure(exc)

    async def restart(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            await blocking(facts.restart, ctx, name, timeout=RESTART_TIMEOUT)
        except (facts.NotFound, facts.Refused, facts.Unavailable, TimeoutError) as exc:
            return failure(exc)
        return JSONResponse({"ok": True, "name": name})

    async def rates(request: Request) -> Response:
        try:
            minutes = float(request.query_params.get("minutes", "10"))
        except ValueError:
            return error(400, "minutes must be a number")
        if not 0 < minutes <= MAX_MINUTES:
            return error(400, f"minutes must be above 0 and at most {MAX_MINUTES:g}")
        sampler = rates_of(ctx)
        if sampler is None:  # the application's lifespan did not start the sampler
            return JSONResponse({"interval": None, "series": {name: [] for name in SERIES}, "sampling": False,
                                 "sampler_error": "the rate sampler is not running"})
        return JSONResponse({"interval": sampler.interval, "series": sampler.series(minutes),
                             "sampling": sampler.task is not None, "sampler_error": sampler.last_error})

    handlers: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        ("/api/pipeline", overview, ["GET"]),
        ("/api/pipeline/states", states, ["GET"]),
        ("/api/pipeline/parked", parked, ["GET"]),
        ("/api/pipeline/parked/{mailbox}/{key}/requeue", requeue, ["POST"]),
        ("/api/pipeline/programs/{name}/restart", restart, ["POST"]),
        ("/api/pipeline/rates", rates, ["GET"]),
    ]
    return [Route(path, handler, methods=methods) for path, handler, methods in handlers]
