"""A local SMTP sink for relay tests: aiosmtpd in a thread, with scripted replies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from tests.support import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class Sink:
    """Records messages; ``replies`` are answered to DATA in order (then 250)."""

    replies: list[str] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    attempts: int = 0
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.attempts += 1
            if self.replies:
                reply = self.replies.pop(0)
                if not reply.startswith("250"):
                    return reply
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK stored"


class CountingController(Controller):
    def __init__(self, sink: Sink, **kwargs: Any) -> None:
        super().__init__(sink, **kwargs)
        self.sink = sink

    def factory(self):  # type: ignore[no-untyped-def]
        self.sink.connections += 1
        return super().factory()


@contextmanager
def smtp_sink(host: str = "127.0.0.1", port: int | None = None, **kwargs: Any) -> Iterator[Sink]:
    """A running sink on a free loopback port (or ``host``:``port``), stopped on exit."""
    sink = Sink(**kwargs)
    sink.port = port or free_port()
    controller = CountingController(sink, hostname=host, port=sink.port)
    controller.start()
    sink.connections = 0  # the controller's own readiness probe is not a client
    try:
        yield sink
    finally:
        controller.stop()
