"""``lamson wait``: return once the project's listeners accept connections.

``supervisord -c deploy/supervisord.conf`` returns as soon as it has
daemonized, before its programs run: mail sent right after it is refused.
``lamson wait`` waits until every listener the project's supervisord runs
(the receiver on ``receiver_config``, the logging server on
``relay_config``, the embedded Redis on ``redis_url``; without a
deploy/supervisord.conf, the receiver alone) accepts TCP connections and,
when it runs router workers, one of them has loaded the application (the
next message is routed), and supervisord calls every program RUNNING (so
``lamson status`` right after says 0), then exits 0. After
``-timeout`` seconds it exits 1 naming what is not up, and at once when
supervisord has given up on one of those programs (FATAL) or a router
worker reports that the application failed to load.
``lamson start`` does the same wait by itself.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from lamson.cli import control, project, supervision
from lamson.cli.framework import EXIT_OK, Command, CommandError, Parser, app_options, option


def configure(parser: Parser) -> None:
    option(parser, "timeout", type=float, default=60.0, metavar="SECONDS",
           help="how long to wait (default 60)")
    app_options(parser)


def expected(args: argparse.Namespace, proj: supervision.Project) -> list[tuple[str, str, int, str]]:
    """(program, host, port, what) to wait for: the listeners of the supervisord conf, else the receiver."""
    if proj.conf.is_file():
        found = control.listeners(args, proj)
        if found:
            return found
    conf = project.settings_or_defaults(args.config, args.root)
    return [("receiver", conf.receiver_config["host"], conf.receiver_config["port"], "receiver_config")]


def fatal_programs(proj: supervision.Project) -> set[str]:
    """Programs supervisord has given up on (FATAL): waiting longer for them is pointless."""
    return {info["group"] for info in supervision.programs(proj) or [] if info["statename"] == "FATAL"}


def why(infos: list[dict[str, Any]], program: str) -> str:
    """What supervisord says of ``program``: its state and log."""
    for info in infos:
        if info["group"] == program:
            return f"{info['statename']}, see {info.get('stdout_logfile') or 'logs/'}"
    return "not a program of supervisord"


def unsettled(proj: supervision.Project, deadline: float) -> list[str]:
    """Wait until supervisord has settled every program (none STARTING); those not RUNNING then.

    A program is STARTING until it has lived ``startsecs``, and ``lamson
    status`` counts that as not running: ready means every program RUNNING.
    """
    infos = supervision.wait_settled(proj, max(0.0, deadline - time.monotonic()))
    return [f"{supervision.full_name(info)} {info['statename']} (see {info.get('stdout_logfile') or 'logs/'})"
            for info in infos
            if info["statename"] != "RUNNING" and not (info["statename"] == "STOPPED" and not info.get("start"))]


def run(args: argparse.Namespace) -> int:
    proj = control.this_project(args)
    entries = expected(args, proj)
    started = time.monotonic()
    late = control.wait_ports(entries, started + args.timeout, gave_up=lambda: fatal_programs(proj))
    took = time.monotonic() - started
    if late:
        infos = supervision.programs(proj)
        if infos is None:
            state = "supervisord is not running" if proj.pidfile.live_pid() is None else "supervisord does not answer"
            missing = ", ".join(f"{name} {host}:{port}" for name, host, port, _ in late) + f" ({state})"
        else:
            missing = "; ".join(f"{name} {host}:{port} ({why(infos, name)})" for name, host, port, _ in late)
        raise CommandError(f"not accepting connections after {took:.0f}s: {missing}")
    shown = ", ".join(f"{name} {host}:{port}" for name, host, port, _ in entries) + " accept connections"
    if control.runs_routers(proj):
        problems = control.wait_routing(args, started + args.timeout)
        took = time.monotonic() - started
        if problems:
            raise CommandError(f"the application cannot route after {took:.0f}s: {'; '.join(problems)}")
        shown += "; a router worker has loaded the application"
    if supervision.programs(proj) is not None:
        down = unsettled(proj, started + args.timeout)
        took = time.monotonic() - started
        if down:
            raise CommandError(f"not every program is running after {took:.0f}s: {'; '.join(down)}")
        shown += "; every program RUNNING"
    print(f"ready after {took:.1f}s: {shown}")
    return EXIT_OK


COMMANDS = {
    "wait": Command(
        name="wait",
        summary="wait until the receiver (and the project's other listeners) accept connections",
        examples=("supervisord -c deploy/supervisord.conf && lamson wait", "lamson wait -timeout 120"),
        configure=configure,
        run=run,
        description=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    ),
}
