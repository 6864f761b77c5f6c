"""Running the relay stage in-process for tests: a Context with an outbox, and burst workers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import redis

from lamson import context, rqcompat
from lamson.relay import Relay
from lamson.relay.smtp import Connections
from lamson.runtime import build_runtime
from lamson.settings import DEFAULTS


class RelayKit:
    """An outbox under ``root``, the relay's runtime built and installed, and ways to run it."""

    def __init__(self, root: Path, conn: redis.Redis, **settings: Any) -> None:
        values = {**DEFAULTS, "outbox_dir": str(root / "outbox"), "bounced_dir": str(root / "bounced"),
                  "spool_dir": str(root / "spool"), "relay_timeout": 1, "relay_retries": [1],
                  "namespace": "t"}
        values.update(settings)
        self.settings = SimpleNamespace(**values)
        self.conn = conn
        self.ctx = build_runtime(self.settings, "relay", conn=conn)  # as `lamson relay` does
        self.ctx.worker_id = "t.relay.h.1.test"
        self.ctx.smtp = Connections(timeout=float(self.settings.relay_timeout))

    @property
    def outbox(self) -> Any:
        return self.ctx.outbox

    def relay(self, host: str = "127.0.0.1", port: int = 8825) -> Relay:
        """A Relay as a script would use it: durable put and a wake-up at once."""
        return Relay(host=host, port=port, connection=self.conn, outbox=self.outbox, settings=self.settings)

    def work(self) -> None:
        """Run every due wake-up (scheduled ones included) in this process, then return."""
        rqcompat.Worker([rqcompat.queue(self.conn, self.ctx.names.outgoing)], connection=self.conn,
                        serializer=rqcompat.SERIALIZER, name=f"t.relay.h.1.{time.monotonic_ns()}",
                        runtime=self.ctx).work(
            burst=True, with_scheduler=True)

    def work_until(self, done: Callable[[], object], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.work()
            if done():
                return
            time.sleep(0.2)
        raise AssertionError(f"not done after {timeout}s")

    def bounced(self) -> list[bytes]:
        folder = Path(self.settings.bounced_dir) / "new"
        return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.exists() else []

    def close(self) -> None:
        self.ctx.smtp.close_all()
        context.install(None)
