"""``lamson log``: the logging server, a smart host for development that delivers nowhere.

By default it runs as its own daemon (``run/log.pid``, startup errors in
``logs/log.out``) so it can sit beside ``lamson start``; ``-foreground`` is
the mode supervisord's ``log`` program uses. Its port defaults to the
project's ``relay_config``, because that is where replies are sent.

When ``lamson start`` already runs the ``log`` program on that port, there is
nothing to start: ``lamson log`` says so and succeeds, so the guide's
``lamson start; lamson log`` works as written.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lamson.cli import pidfiles, project, supervision
from lamson.cli.framework import Command, CommandError, Parser, app_options, option, port_number


def configure(parser: Parser) -> None:
    option(parser, "host", default=None, help="address to listen on (default: relay_config['host'])")
    option(parser, "port", type=port_number, default=None, help="port (default: relay_config['port'], 8825)")
    option(parser, "queue", default=None, metavar="DIR", help="Maildir for the messages (default: run/queue)")
    option(parser, "logs", default=None, metavar="DIR", help="folder for logger.log and lamson.err (default: logs)")
    option(parser, "pid", default="run/log.pid", metavar="FILE", help="pid file of the daemon")
    option(parser, "foreground", action="store_true", help="do not daemonize (supervisord's log program)")
    option(parser, "FORCE", "force", action="store_true", dest="force", help="start over a stale pid file")
    app_options(parser)


def supervised_log(root: Path) -> dict[str, Any] | None:
    """supervisord's ``log`` program of this project, if it is running."""
    infos = supervision.programs(supervision.Project(root)) or []
    for info in infos:
        if info["group"] == "log" and info["statename"] == "RUNNING":
            return info
    return None


def run(args: argparse.Namespace) -> int:
    conf = project.settings_or_defaults(args.config, args.root)
    host = args.host or conf.relay_config["host"]
    port = args.port or conf.relay_config["port"]
    queue_dir = args.queue or conf.queue_dir
    log_dir = args.logs or conf.log_dir
    if args.foreground:
        from lamson.private import keep_private
        from lamson.receiver import logserver

        keep_private(conf, log_dir=log_dir)  # umask 077, run/ and logs/ 0700 under supervisord -n

        logserver.run(host, port, queue_dir, log_dir)
        return 0

    root = project.root_path(args.root)
    pidfile = pidfiles.PidFile(args.pid)
    pid = pidfile.read()
    if pid is not None and pidfiles.alive(pid) and pidfiles.is_ours(pid):
        raise CommandError(f"the logging server is already running (pid {pid}, {pidfile}); "
                           f"stop it with: lamson stop -pid {pidfile}")
    if pidfile.exists() and not args.force:
        raise CommandError(f"stale pid file {pidfile} (pid {pid} is not running); give -FORCE to replace it")
    if project.accepting(host, port):
        info = supervised_log(root)
        if info is not None:
            print(f"the logging server is already running under supervisord (lamson start: program log, "
                  f"pid {info['pid']}) on {host}:{port}; nothing to start")
            return 0
        raise CommandError(f"something already listens on {host}:{port}; give another -port")
    pidfile.remove()
    return daemonize(host, port, queue_dir, log_dir, pidfile)


def daemonize(host: str, port: int, queue_dir: str, log_dir: str, pidfile: pidfiles.PidFile) -> int:
    """Start ``lamson log -foreground`` in its own session; return once it accepts connections."""
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    out_path = Path(log_dir) / "log.out"
    argv = [sys.executable, "-m", "lamson.cli", "log", "-foreground", "-host", host, "-port", str(port),
            "-queue", queue_dir, "-logs", log_dir]
    with open(out_path, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    pidfile.write(proc.pid)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pidfile.remove()
            raise CommandError(f"the logging server exited at start: {last_line(out_path)}")
        if project.accepting(host, port):
            print(f"logging server on {host}:{port} (pid {proc.pid}, {pidfile}), saving mail to {queue_dir}, "
                  f"logs in {log_dir}/logger.log and {log_dir}/lamson.err")
            return 0
        time.sleep(0.05)
    raise CommandError(f"the logging server (pid {proc.pid}) is not accepting on {host}:{port}; see {out_path}")


def last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no output)"
    return lines[-1].strip() if lines else "(no output)"


COMMANDS = {
    "log": Command(
        name="log",
        summary="run the logging server (relay_config's port): every message to run/queue",
        examples=("lamson log", "lamson log -port 8825 -host 127.0.0.1", "lamson log -foreground"),
        configure=configure,
        run=run,
        description="Run the logging server: an SMTP server that keeps every message it gets in the\n"
                    "run/queue Maildir (read it with mutt -F muttrc or lamson queue), one line per message\n"
                    "in logs/logger.log and the SMTP chat in logs/lamson.err. It daemonizes (run/log.pid)\n"
                    "unless -foreground. If `lamson start` already runs it on that port, it says so and\n"
                    "exits 0. Stop it with: lamson stop -pid run/log.pid (or lamson stop -ALL run).",
    ),
}
