"""The receiver process: aiosmtpd on ``receiver_config``, spooling through SpoolHandler.

It owns the event loop (no Controller thread): one process, one loop, and a
small thread pool for the blocking parts (fsync, Redis). SIGTERM stops
accepting connections, lets open sessions finish for a few seconds, then exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

from aiosmtpd.smtp import SMTP

from lamson import logs, queues
from lamson.connection import connect
from lamson.receiver.enqueue import Enqueuer
from lamson.receiver.handler import SpoolHandler
from lamson.redis_check import persistence_problems
from lamson.spool import open_spool

log = logging.getLogger("lamson.receiver")

#: How long open sessions may run after SIGTERM before the process exits.
DRAIN_SECONDS = 10.0


class ReceiverError(Exception):
    """The receiver cannot start safely (e.g. Redis spool without persistence)."""


def build_handler(settings: ModuleType, executor: ThreadPoolExecutor) -> SpoolHandler:
    """The handler for these settings; refuses a Redis spool that would not keep mail."""
    conn = connect(settings.redis_url, timeout=2.0)
    spool = open_spool(settings, conn)
    try:
        problems = persistence_problems(conn)
    except Exception as exc:  # Redis down at start: the Maildir spool still accepts
        problems = [f"cannot reach Redis at {settings.redis_url} ({exc}); messages stay spooled until it is back"]
    for problem in problems:
        log.warning("WARNING: %s", problem)
    if settings.spool == "redis" and problems:
        raise ReceiverError("refusing to start: the Redis spool needs a reachable Redis with AOF and noeviction")
    enqueue = Enqueuer(conn, timeout=settings.job_timeout, retries=settings.route_retries)
    return SpoolHandler(
        spool,
        lambda key: enqueue(key, queues.INCOMING),
        executor,
        max_recipients=settings.max_recipients,
        hostname=getattr(settings, "receiver_hostname", None) or socket.gethostname(),
    )


async def serve(settings: ModuleType, stop: asyncio.Event | None = None) -> None:
    """Listen until ``stop`` is set (or SIGTERM/SIGINT), then drain and return."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="spool")
    handler = build_handler(settings, executor)
    host = settings.receiver_config["host"]
    port = settings.receiver_config["port"]

    def factory() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=settings.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=handler.hostname,
            ident="Lamson ESMTP",
            timeout=settings.smtp_timeout,
            loop=loop,
        )

    server = await loop.create_server(factory, host=host, port=port, reuse_address=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    log.info("receiver listening on %s:%s, spool %r", host, port, handler.spool)
    try:
        await stop.wait()
    finally:
        log.info("receiver stopping: no new connections, draining for up to %.0fs", DRAIN_SECONDS)
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), DRAIN_SECONDS)
        except TimeoutError:
            log.warning("sessions still open after %.0fs; exiting", DRAIN_SECONDS)
        executor.shutdown(wait=True)


def run(settings: ModuleType) -> None:
    """Entry point of ``lamson receiver``: serve in the foreground until signalled."""
    logs.setup()
    asyncio.run(serve(settings))
