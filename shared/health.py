"""Can the application route mail right now? One answer for ``lamson status`` and the exporter's ``/health``.

supervisord only knows whether a process lives. A router worker whose
application fails to import (a syntax error in a handler) lives on: it logs
the error and tries again every ``boot_retry`` seconds
(lamson.workers.worker.boot_until_loaded), so supervisord shows it RUNNING
while nothing is routed. So the workers say it themselves, in Redis, where
every host's ``lamson status`` and the exporter see it:

* a router worker that cannot load the application keeps
  ``NAMESPACE:health:load:WORKER_ID`` = ``{"error": ..., "since": ...}`` with a
  TTL of ``worker_ttl``, refreshed while it waits to try again, deleted when
  the load succeeds or the worker stops; a worker killed meanwhile leaves a
  report that lapses with its TTL. The sorted set
  ``NAMESPACE:health:load-failures`` indexes the reports (as
  ``NAMESPACE:alive-workers`` indexes the liveness keys), so reading them
  never scans the keyspace;
* a worker that loaded the application beats ``NAMESPACE:alive:WORKER_ID``
  (lamson.liveness), so "some router worker is alive" means "some worker
  can route".

The application is healthy when Redis answers, no router worker reports a
failed load, and at least one router worker is alive (with none, nothing
would be routed: mail waits in the spool). On this host, a report or a
liveness key of a process that is gone is not believed (known at once,
without waiting for its TTL).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from lamson.liveness import WorkerId, indexed, live_workers, this_host
from lamson.names import Names
from lamson.process import alive

log = logging.getLogger("lamson.health")

#: The role of the workers that route incoming mail (lamson.workers.worker; the relay's is "relay").
ROUTER = "router"

#: The longest error text kept in a report (a traceback stays in the worker's log).
MAX_ERROR = 500


def connection(settings: Any, timeout: float = 2.0) -> redis.Redis:
    """A client whose every wait is short: a health answer that hangs on a sick Redis is no answer."""
    from lamson.connection import connect, is_sentinel

    if is_sentinel(settings.redis_url):  # the primary the Sentinels name, followed across failovers
        return connect(settings.redis_url, timeout=timeout)
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)


def load_key(names: Names, worker_id: str) -> str:
    """The Redis key where a worker reports that it cannot load the application."""
    return names.key("health", "load", worker_id)


def load_index(names: Names) -> str:
    """The sorted set of worker ids that reported a failed load (score: when they last did)."""
    return names.key("health", "load-failures")


def report_load_failure(conn: redis.Redis, names: Names, worker_id: str, error: str, ttl: float) -> bool:
    """Say (for ``ttl`` seconds) that this worker cannot load the application; never raises.

    Returns False when Redis did not take it: the worker goes on retrying its
    load either way (reporting is never a reason to stop).
    """
    now = time.time()
    record = json.dumps({"error": error[:MAX_ERROR], "since": now})
    try:
        with conn.pipeline(transaction=False) as pipe:
            pipe.set(load_key(names, worker_id), record, ex=max(int(ttl), 1))
            pipe.zadd(load_index(names), {worker_id: now})
            pipe.execute()
        return True
    except (redis.RedisError, OSError) as exc:
        log.debug("load failure not reported: %s", exc)
        return False


def clear_load_failure(conn: redis.Redis, names: Names, worker_id: str) -> None:
    """The application loaded (or the worker stops): withdraw this worker's report; never raises."""
    try:
        with conn.pipeline(transaction=False) as pipe:
            pipe.delete(load_key(names, worker_id))
            pipe.zrem(load_index(names), worker_id)
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.debug("load failure report not withdrawn (it lapses with its TTL): %s", exc)


def _believable(worker_id: str, host: str) -> bool:
    """False for a worker of this host whose process is gone (its keys only wait for their TTL)."""
    wid = WorkerId.parse(worker_id)
    return wid is None or wid.host != host or alive(wid.pid)


def load_failures(conn: redis.Redis, names: Names) -> dict[str, str]:
    """Worker id -> why it cannot load the application, for every live report (raises RedisError)."""
    host = this_host()
    found: dict[str, str] = {}
    for worker, raw in indexed(conn, load_index(names), lambda w: load_key(names, w)):
        if not _believable(worker, host):
            continue
        try:
            error = str(json.loads(raw)["error"])
        except (ValueError, KeyError, TypeError):
            error = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        found[worker] = error
    return found


@dataclass
class Health:
    """What :func:`check` found. ``ok`` when the application can route."""

    namespace: str
    redis: bool
    #: Role ("router", "relay", "queue") -> ids of the live workers of that role.
    workers: dict[str, list[str]] = field(default_factory=dict)
    #: Worker id -> why it cannot load the application.
    failures: dict[str, str] = field(default_factory=dict)
    #: One line per reason the application cannot route (empty when ok).
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, role: str) -> int:
        return len(self.workers.get(role, []))

    def summary(self) -> str:
        """One line: ``routing (2 router workers, 1 relay worker alive)`` or the first problem."""
        if not self.ok:
            return self.problems[0]
        roles = sorted(self.workers, key=lambda r: (r != ROUTER, r))
        alive_text = ", ".join(f"{self.count(r)} {r} worker{'s' if self.count(r) != 1 else ''}" for r in roles)
        return f"routing ({alive_text} alive)"

    def as_json(self) -> dict[str, Any]:
        """The body of ``/health``: small, stable, and enough to know what to fix."""
        return {
            "status": "ok" if self.ok else "unhealthy",
            "namespace": self.namespace,
            "redis": self.redis,
            "workers": {role: self.count(role) for role in sorted(self.workers)},
            "load_failures": dict(sorted(self.failures.items())),
            "problems": list(self.problems),
        }


def _by_role(workers: Iterable[str], host: str) -> dict[str, list[str]]:
    roles: dict[str, list[str]] = {}
    for worker in workers:
        wid = WorkerId.parse(worker)
        if wid is None or not _believable(worker, host):
            continue
        roles.setdefault(wid.role, []).append(worker)
    return roles


def check(conn: redis.Redis, names: Names) -> Health:
    """Ask Redis whether the application can route; never raises (an unreachable Redis is a problem)."""
    health = Health(namespace=names.namespace, redis=False)
    try:
        conn.ping()
        health.redis = True
        host = this_host()
        health.workers = _by_role(live_workers(conn, names), host)
        health.failures = load_failures(conn, names)
    except (redis.RedisError, OSError) as exc:
        health.problems.append(f"Redis does not answer ({' '.join(str(exc).split())}): nothing is routed")
        return health
    for worker, error in sorted(health.failures.items()):
        health.problems.append(f"router worker {worker}: application failed to load: {error}")
    if not health.count(ROUTER):
        health.problems.append("no router worker is alive: nothing is routed (mail waits in the spool)"
                               + (" until the application loads" if health.failures else ""))
    return health


# -- /health on the exporter's port ---------------------------------------------

#: The path of the health endpoint on the metrics port.
PATH = "/health"


def wsgi_app(metrics_app: Callable[..., Any], probe: Callable[[], Health]) -> Callable[..., Any]:
    """A WSGI app serving ``/health`` from ``probe()`` and everything else with ``metrics_app``.

    ``/health`` answers 200 with :meth:`Health.as_json` when the application
    can route, 503 with the same body (its ``problems`` saying why) when not:
    what load balancers and orchestrators read. prometheus_client's own app
    keeps serving ``/metrics`` as before.
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") != PATH:
            result: Iterable[bytes] = metrics_app(environ, start_response)
            return result
        try:
            health = probe()
        except Exception as exc:  # a bug here must still answer, and say it is not healthy
            log.exception("health check failed")
            health = Health(namespace="?", redis=False, problems=[f"health check failed: {exc!r}"])
        body = (json.dumps(health.as_json(), sort_keys=True) + "\n").encode()
        status = "200 OK" if health.ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store")])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return app
