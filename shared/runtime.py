"""One runtime per process: the services a Lamson process builds once at start and hands to its jobs.

Every program (``lamson worker``, ``lamson relay``, ``lamson receiver``) and
every test fixture builds its services the same way, with
:func:`build_runtime`: the settings (typed, :class:`lamson.typed_settings.Settings`),
Redis, the application's names, this process's worker id, its spools and
outbox, senders' lines, and, for a router worker, the Router with its
conversation state and locks in Redis. Jobs receive the runtime as their
first argument (lamson.rqcompat binds it to the worker's job class): a job
never looks a service up in a process global (docs/design.md, "One runtime
per process").

Code written for Lamson 1.x reaches the same objects through the places it
knows: ``lamson.router.Router`` is the runtime's router, ``config.settings``
its settings module (``settings.relay`` is the application's Relay), and
``Relay.deliver``, ``defer()`` and ``Queue.push``, which handlers call with
no runtime in hand, find it with :func:`lamson.context.get`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from lamson import context
from lamson.groups import Group, named
from lamson.names import Names, names_for
from lamson.typed_settings import Settings

if TYPE_CHECKING:
    from lamson.order import Lines
    from lamson.router.routing import RouterClass
    from lamson.spool import Spool

#: What a process is: it decides what :func:`build_runtime` wires.
ROLES = ("router", "relay", "queue", "receiver", "tool")


@dataclass(eq=False)
class Runtime:
    """The process-wide services of a Lamson process; one per process, handed to every job."""

    #: The application's settings module: the 1.x view (``config.settings``), what boot modules assign onto.
    settings: Any
    conn: redis.Redis
    names: Names
    #: This process's worker id: unique across hosts, restarts and applications.
    worker_id: str = ""
    role: str = "tool"
    #: The router a router worker routes with (lamson.router.Router, unless a test brings its own).
    router: RouterClass | None = None
    #: Spools by group name ("incoming", "outgoing", deferred groups, Maildir queues), opened on demand.
    spools: dict[str, Spool] = field(default_factory=dict)
    #: The groups this process serves, when they are not plain names (a Maildir queue's size limit).
    groups: dict[str, Group] = field(default_factory=dict)
    #: Replies written by handlers during the current routing batch, not yet made durable.
    pending_outbox: list[str] = field(default_factory=list)
    #: The relay worker's kept-open SMTP sessions (lamson.relay.smtp.Connections).
    smtp: Any = None
    #: Set when the process is told to stop: a job finishes the message in hand and hands the
    #: rest back (a job following a busy sender's line would otherwise run on and on).
    stopping: bool = False
    #: An in-process test runtime (lamson.testing.inprocess) sets it when the router does not log exceptions
    #: (config/testing.py: ``LOG_EXCEPTIONS = False``): what the handlers raise reaches the test.
    propagate_errors: bool = False
    _config: Settings | None = field(default=None, repr=False)

    @property
    def config(self) -> Settings:
        """The settings, typed and with their defaults (built once)."""
        if self._config is None:
            self._config = Settings.of(self.settings)
        return self._config

    def configure(self, config: Settings) -> None:
        """Replace the typed settings (a Maildir queue's worker sweeps at its queue's pace)."""
        self._config = config

    @property
    def outbox(self) -> Spool:
        """The outgoing spool: replies waiting for the relay."""
        return self.spool("outgoing")

    @outbox.setter
    def outbox(self, spool: Spool) -> None:
        self.spools["outgoing"] = spool

    def spool(self, group: str = "incoming") -> Spool:
        """The spool of a worker group, opened once."""
        if group not in self.spools:
            from lamson.spool import open_spool

            self.spools[group] = open_spool(self.settings, self.conn, group)
        return self.spools[group]

    def lines(self, group: str = "incoming") -> Lines:
        """The per-sender lines (lamson.order) of a worker group."""
        from lamson.order import Lines

        return Lines(self.conn, self.names, group)

    def group(self, name: str) -> Group:
        """What the group ``name`` is (registered by this process, else by its name)."""
        return self.groups.get(name) or named(name)

    def wake_router(self, group: str, keys: list[str], *, delay: float = 0.0) -> None:
        """A routing wake-up for ``keys`` of ``group`` (after ``delay`` seconds)."""
        from lamson import queues

        queues.wake_router(self.conn, self.names, group, keys, delay=delay,
                           timeout=queues.route_timeout(self.config, len(keys)))

    def wake_relay(self, keys: list[str], counts: dict[str, int] | None = None) -> None:
        """A relay wake-up for outbox ``keys``; metric increments (lamson.metrics) ride in the same round trip
        and never fail it."""
        from lamson import metrics, queues

        with self.conn.pipeline() as pipe:
            queues.wake_relay(self.conn, self.names, keys, pipeline=pipe)
            ours = metrics.queue(pipe, self.names, counts) if counts else 0
            metrics.execute(pipe, ours)

    def count(self, counts: dict[str, int]) -> None:
        """Add to metric counters (lamson.metrics) on their own."""
        from lamson import metrics

        metrics.record(self.conn, self.names, counts)

    @property
    def relay(self) -> Any:
        """The application's Relay, as its boot module assigned it (``settings.relay``), or None."""
        return getattr(self.settings, "relay", None)

    def routes(self) -> RouterClass:
        """The router (a clear error in a process that routes nothing)."""
        if self.router is None:
            raise RuntimeError(f"a {self.role} process has no router: routing runs in `lamson worker`")
        return self.router


def build_runtime(settings: Any, role: str, *, conn: redis.Redis | None = None,
                  router: RouterClass | None = None, install: bool = True) -> Runtime:
    """The process's runtime for ``role`` (one of :data:`ROLES`), installed for 1.x code paths.

    A router worker's (``role="router"`` or ``"queue"``) puts its router's
    conversation state and locks in Redis under the application's namespace,
    and parked mail in ``undeliverable_dir``, before the application's boot
    module runs (the boot then loads handlers into that same router). ``conn``
    and ``router`` are for tests: a Redis of their own, a router of their own
    (``lamson.router.Router``, the process's, otherwise).
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if conn is None:
        from lamson.connection import connect

        conn = connect(settings.redis_url)
    names = names_for(settings)
    worker_id = ""
    if role in ("router", "relay", "queue"):
        from lamson.liveness import new_worker_id

        worker_id = new_worker_id(names, role)
    runtime = Runtime(settings=settings, conn=conn, names=names, worker_id=worker_id, role=role)
    if role in ("router", "queue"):
        from lamson.router.wiring import wire

        runtime.router = wire(router, conn, runtime.config)
    elif router is not None:
        runtime.router = router
    if install:
        context.install(runtime)
    return runtime
