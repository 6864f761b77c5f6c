"""The logging server (``lamson log``): a smart host for development that delivers nowhere.

Every message it receives goes into the ``run/queue`` Maildir (which the
generated muttrc reads), one line per message into ``logs/logger.log``, and
the SMTP protocol chat into ``logs/lamson.err``. It is what ``relay_config``
points at out of the box, so replies from handlers land where you can see them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from lamson import maildir
from lamson.logs import SafeFormatter
from lamson.receiver import loop_name, run_loop
from lamson.settings import DEFAULTS

log = logging.getLogger("lamson.logger")


def envelope_headers(mail_from: str, rcpt_tos: list[str]) -> bytes:
    """Return-Path and X-Original-To, as a local delivery agent adds them, so the envelope is visible."""
    lines = [f"Return-Path: <{mail_from}>\r\n"] + [f"X-Original-To: {r}\r\n" for r in rcpt_tos]
    return "".join(lines).encode("utf-8", "replace")


class LogHandler:
    """Store each message in a Maildir and log one line about it."""

    def __init__(self, queue_dir: str | Path) -> None:
        self.queue = maildir.ensure(queue_dir)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # Stored without the line end that ends the DATA's last line, as Lamson 1.x's logging server did:
        # smtplib ends every message with one, so a reply whose body was "Thanks." reads back from
        # run/queue as "Thanks." (1.x applications' tests compare bodies exactly).
        content = envelope.original_content
        if content.endswith(b"\r\n"):
            content = content[:-2]
        data = envelope_headers(envelope.mail_from or "", envelope.rcpt_tos) + content
        try:
            key = maildir.write(self.queue, data, sync=False)
        except OSError as exc:
            log.error("cannot store message: %s", exc)
            return "451 4.3.0 Cannot store message"
        log.info("from=<%s> to=%s size=%d key=%s", envelope.mail_from,
                 ",".join(f"<{r}>" for r in envelope.rcpt_tos), len(envelope.original_content), key)
        return "250 2.0.0 OK logged"


def configure_logging(log_dir: str | Path) -> None:
    """logger.log: a line per message; lamson.err: the protocol chat (aiosmtpd's mail.log)."""
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fmt = SafeFormatter("%(asctime)s %(message)s")  # addresses from strangers: escapes shown as text
    messages = logging.FileHandler(folder / "logger.log")
    messages.setFormatter(fmt)
    log.addHandler(messages)
    log.setLevel(logging.INFO)
    chat = logging.FileHandler(folder / "lamson.err")
    chat.setFormatter(fmt)
    protocol = logging.getLogger("mail.log")
    protocol.addHandler(chat)
    protocol.setLevel(logging.DEBUG)
    protocol.propagate = False


async def serve(host: str, port: int, queue_dir: str | Path, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set or SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    handler = LogHandler(queue_dir)
    hostname = socket.gethostname()
    server = await loop.create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, decode_data=False, hostname=hostname,
                     ident="Lamson logging server", data_size_limit=None, loop=loop),
        host=host, port=port, reuse_address=True,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    log.info("logging server on %s:%s saving to %s (%s event loop)", host, port, handler.queue, loop_name(loop))
    try:
        await stop.wait()
    finally:
        server.close()


def run(host: str, port: int, queue_dir: str | Path = DEFAULTS["queue_dir"],
        log_dir: str | Path = DEFAULTS["log_dir"]) -> None:
    """Entry point of ``lamson log``: serve in the foreground."""
    configure_logging(log_dir)
    run_loop(serve(host, port, queue_dir))
