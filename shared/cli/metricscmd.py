"""``lamson metrics``: the Prometheus exporter of one application (lamson.metrics).

It serves ``/metrics`` over HTTP: the counters every stage keeps in Redis
under the application's namespace, the accept-to-delivered latency
histogram, and gauges computed at each scrape from the spool and outbox
(waiting, in flight, parked, oldest waiting message's age). On the same port,
``/health`` answers 200 (JSON) when the application can route, 503 with the
reasons when Redis does not answer, a router worker cannot load the
application, or no router worker is alive (lamson.health). One exporter per
application is enough, on any host that sees Redis and the spool folders;
supervisord runs it as the program ``metrics`` (with ``-wait-for-port``: a
taken port is waited out, logged once a minute, instead of ending FATAL).
See docs/operations.md.
"""

from __future__ import annotations

import argparse

from lamson.cli.framework import Command, CommandError, Parser, app_options, option, port_number


def configure(parser: Parser) -> None:
    option(parser, "port", type=port_number, default=None,
           help="port to serve /metrics and /health on (default: metrics_config['port'], 9108)")
    option(parser, "host", default=None, help="address to listen on (default: metrics_config['host'], 127.0.0.1)")
    option(parser, "wait-for-port", action="store_true",
           help="while the port is taken, wait and try again (logged once a minute) instead of exiting")
    app_options(parser)


def run(args: argparse.Namespace) -> int:
    from lamson import logs, metrics
    from lamson import settings as lsettings
    from lamson.private import keep_private

    conf = lsettings.load(args.config, args.root)
    keep_private(conf)  # umask 077, run/ and logs/ 0700 even under supervisord -n (lamson.private)
    lsettings.ensure_credentials(conf)  # started with the embedded Redis: the password it is about to require
    logs.setup(settings=conf)
    host = args.host or conf.metrics_config.get("host", "127.0.0.1")
    port = args.port if args.port is not None else int(conf.metrics_config.get("port", 9108))
    try:
        metrics.serve(conf, host, port, wait_for_port=args.wait_for_port)
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return 0


COMMANDS = {
    "metrics": Command(
        name="metrics",
        summary="serve Prometheus metrics (counters, queue depths, latency) and /health for the application",
        examples=("lamson metrics -port 9108", "lamson metrics -host 0.0.0.0 -port 9108 -root /srv/myapp",
                  "curl -s http://127.0.0.1:9108/health"),
        configure=configure,
        run=run,
        description=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    ),
}
