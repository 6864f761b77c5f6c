"""The foreground process commands that supervisord runs.

``lamson receiver``, ``lamson worker``, ``lamson relay`` and ``lamson redis``
each run one stage in the foreground, logging to stderr (supervisord captures
it under logs/); they are also the way to debug a stage in a terminal.
(``lamson log -foreground`` is the fifth; it lives with ``lamson log``.)
"""

from __future__ import annotations

import argparse

from lamson.cli.framework import Command, Parser, app_options, option, port_number


def configure_receiver(parser: Parser) -> None:
    app_options(parser)
    option(parser, "host", default=None, help="address to listen on (default: receiver_config['host'])")
    option(parser, "port", type=port_number, default=None,
           help="port to listen on (default: receiver_config['port'])")


def receiver(args: argparse.Namespace) -> int:
    from lamson import settings as lsettings
    from lamson.receiver import server

    conf = lsettings.load(args.config, args.root)
    lsettings.ensure_credentials(conf)
    if args.host:
        conf.receiver_config["host"] = args.host
    if args.port is not None:
        conf.receiver_config["port"] = args.port
    server.run(conf)
    return 0


def configure_worker(parser: Parser) -> None:
    app_options(parser)
    option(parser, "boot", default=None, metavar="MODULE",
           help="boot module to run instead of config.boot (e.g. a queue processor's)")
    option(parser, "queue", action="append", default=None, metavar="NAME",
           help="rq queue to work on (repeatable; default lamson-incoming)")
    option(parser, "burst", action="store_true", help="exit when the queues are empty")
    option(parser, "name", default=None, help="worker name shown by rq info")


def embedded_redis_password(args: argparse.Namespace) -> None:
    """Generate the embedded Redis's password if no program of supervisord.conf has yet;
    and run/ and logs/ kept private (lamson.private: ``supervisord -n`` applies no umask)."""
    from lamson import settings as lsettings
    from lamson.private import keep_private

    conf = lsettings.load(args.config, args.root)
    keep_private(conf)
    lsettings.ensure_credentials(conf)


def worker(args: argparse.Namespace) -> int:
    from lamson.workers import worker as w

    embedded_redis_password(args)
    return int(w.run(settings_name=args.config, root=args.root, queues=args.queue, boot=args.boot,
                     burst=args.burst, name=args.name) or 0)


def configure_relay(parser: Parser) -> None:
    app_options(parser)
    option(parser, "burst", action="store_true", help="exit when the queue is empty")
    option(parser, "name", default=None, help="worker name shown by rq info")


def relay(args: argparse.Namespace) -> int:
    from lamson.relay import worker as w

    embedded_redis_password(args)
    return int(w.run(settings_name=args.config, root=args.root, burst=args.burst, name=args.name) or 0)


def configure_redis(parser: Parser) -> None:
    app_options(parser)
    option(parser, "conf", default="deploy/redis.conf", help="redis.conf to start from")
    option(parser, "dir", default=None, metavar="DIR",
           help="where Redis keeps its AOF (default: LAMSON_REDIS_DIR, else run_dir): "
                "put it on another disk than the spool (docs/operations.md)")


def redis_cmd(args: argparse.Namespace) -> int:
    from lamson import redis_server
    from lamson import settings as lsettings

    conf = lsettings.load(args.config, args.root)
    import os

    from lamson.private import keep_private

    keep_private(conf)  # run/ and logs/ 0700 even under supervisord -n (lamson.private)

    data_dir = args.dir or os.environ.get("LAMSON_REDIS_DIR") or None
    redis_server.exec_redis(conf.redis_url, args.conf, conf.run_dir, data_dir)
    return 0  # not reached: exec replaces this process


def configure_redis_url(parser: Parser) -> None:
    app_options(parser)


def redis_url_cmd(args: argparse.Namespace) -> int:
    from lamson.cli import project

    print(project.settings_or_defaults(args.config, args.root).redis_url)
    return 0


COMMANDS = {
    "receiver": Command(
        name="receiver",
        summary="run the SMTP receiver in the foreground (supervisord's receiver program)",
        examples=("lamson receiver", "lamson receiver -port 8823"),
        configure=configure_receiver,
        run=receiver,
    ),
    "worker": Command(
        name="worker",
        summary="run a router worker in the foreground (supervisord's router program)",
        examples=("lamson worker", "lamson worker -queue lamson-incoming -burst"),
        configure=configure_worker,
        run=worker,
    ),
    "relay": Command(
        name="relay",
        summary="run the relay worker in the foreground (delivers lamson-outgoing over SMTP)",
        examples=("lamson relay",),
        configure=configure_relay,
        run=relay,
    ),
    "redis": Command(
        name="redis",
        summary="exec the embedded redis-server on the settings' redis_url (supervisord's redis program)",
        examples=("lamson redis -conf deploy/redis.conf",),
        configure=configure_redis,
        run=redis_cmd,
    ),
    "redis-url": Command(
        name="redis-url",
        summary="print the application's redis_url with its credentials (for rq: rq info -u \"$(lamson redis-url)\")",
        examples=('rq info -u "$(lamson redis-url)"', 'export RQ_REDIS_URL="$(lamson redis-url)"'),
        configure=configure_redis_url,
        run=redis_url_cmd,
        description="The URL every Lamson process connects with: the settings' redis_url (LAMSON_REDIS_URL),\n"
                    "with the embedded Redis's generated password (run/redis.pass) when it carries none.\n"
                    "It holds the password: do not paste it where others can read it.",
    ),
}
