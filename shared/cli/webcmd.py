"""``lamson web``: the development inbox and pipeline console, in the browser (docs/web.md).

It shows every Maildir of the application (the logging server's replies in ``run/queue``, parked
and bounced mail, Maildir queues), searchable and updated live; lets you answer the application as
the other side of a conversation (sent over SMTP to its own receiver, with the sender you type);
and shows the pipeline beside the mail: programs, queues, workers, conversation states, parked
mail, rates. Every page is built on a JSON API under /api.

It listens on 127.0.0.1:8880 by default (``web_config``; LAMSON_WEB_HOST / LAMSON_WEB_PORT), and
refuses any address beyond this machine unless a password is set (``web_password``, or a password
in ``run/web.token``): whoever reaches it reads all the mail and sends mail as anyone. supervisord
runs it as the program ``web`` in development (with ``-wait-for-port``: a taken port is waited out).
It is not in the production deploy files.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import time
from pathlib import Path
from types import FrameType

from lamson.cli.framework import Command, CommandError, Parser, app_options, option, port_number

log = logging.getLogger("lamson.web")


def configure(parser: Parser) -> None:
    option(parser, "port", type=port_number, default=None,
           help="port to listen on (default: web_config['port'], 8880)")
    option(parser, "host", default=None,
           help="address to listen on (default: web_config['host'], 127.0.0.1; another needs web_password)")
    option(parser, "wait-for-port", action="store_true",
           help="while the port is taken, wait and try again (logged once a minute) instead of exiting")
    app_options(parser)


def _listening_socket(host: str, port: int, wait: bool) -> socket.socket:
    """A bound, listening socket on ``host:port``, made here rather than by uvicorn so that a taken port
    can be waited out (``wait``: supervisord starts the program again and again otherwise, then gives
    up, FATAL); TERM or INT still end the wait, by their default action."""
    last_logged = 0.0
    while True:
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)[0]
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
                sock.listen(128)
            except OSError:
                sock.close()
                raise
            sock.set_inheritable(True)
            return sock
        except OSError as exc:
            if not wait:
                raise
            if time.monotonic() - last_logged >= 60:
                log.error("web: cannot listen on %s:%d (%s); trying again", host, port, exc.strerror or exc)
                last_logged = time.monotonic()
            time.sleep(2.0)


def _server_class() -> type:
    """uvicorn's Server, ending with exit status 0 after a TERM or INT.

    uvicorn shuts down gracefully on those signals and then raises the signal again, so the
    process dies by it (status -15): the metrics exporter and the other programs exit 0 when
    asked to stop, and so does this one. A second INT still forces the exit, as in uvicorn.
    """
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return Server


def run(args: argparse.Namespace) -> int:
    import redis
    import uvicorn

    from lamson import logs
    from lamson import settings as lsettings
    from lamson.private import keep_private
    from lamson.typed_settings import Settings
    from lamson.web.app import create_app
    from lamson.web.context import WebContext
    from lamson.web.security import check_bind, password_for

    module = lsettings.load(args.config, args.root)
    settings = Settings.of(module)
    # Relative folders in the settings are the current directory's, as every stage reads them;
    # -root names the project explicitly.
    root = Path(args.root).resolve() if args.root else Path.cwd().resolve()
    # umask 077, run/ and logs/ 0700: the index holds the text of every message (lamson.private).
    keep_private(run_dir=root / settings.run_dir, log_dir=root / settings.log_dir)
    logs.setup(settings=module)
    host = args.host or str(settings.web_config.get("host", "127.0.0.1"))
    port = args.port if args.port is not None else int(settings.web_config.get("port", 8880))
    password = password_for(settings, root)
    check_bind(host, password)

    try:
        conn: redis.Redis | None = redis.Redis.from_url(settings.redis_url, socket_timeout=3.0,
                                                        socket_connect_timeout=3.0)
    except ValueError as exc:
        log.warning("web: redis_url is unusable (%s): the pipeline page will say so", exc)
        conn = None
    from lamson.cli.supervision import Project

    # Where `lamson status` asks supervisord (LAMSON_SUPERVISORD_CONF honoured); it may start later.
    supervisor_socket = Project(root).socket
    receiver = (str(settings.receiver_config.get("host", "127.0.0.1")),
                int(settings.receiver_config.get("port", 8823)))
    if receiver[0] in ("", "0.0.0.0", "::"):
        receiver = ("127.0.0.1", receiver[1])
    ctx = WebContext(settings=settings, root=root, conn=conn,
                     supervisor_socket=supervisor_socket,
                     receiver=receiver, password=password)
    ctx.services["app_name"] = lsettings.app_root(args.root).name
    ctx.services["bind_host"] = host

    try:
        sock = _listening_socket(host, port, args.wait_for_port)
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    config = uvicorn.Config(create_app(ctx, bind_host=host), log_config=None, log_level="info", access_log=False,
                            timeout_graceful_shutdown=3, lifespan="on", server_header=False,
                            proxy_headers=False)
    server = _server_class()(config)
    shown = f"[{host}]" if ":" in host else host
    log.info("web: the inbox and pipeline of %s on http://%s:%d/ (pid %d)", ctx.services["app_name"], shown,
             sock.getsockname()[1], os.getpid())
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if conn is not None:
            conn.close()
    return 0


COMMANDS = {
    "web": Command(
        name="web",
        summary="the application's mail and pipeline in a browser: read, search, answer as the other side",
        examples=("lamson web", "lamson web -port 8880 -root /srv/myapp",
                  "LAMSON_WEB_HOST=0.0.0.0 lamson web   # refused unless web_password is set"),
        configure=configure,
        run=run,
        description=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    ),
}
