"""``lamson start``, ``stop``, ``restart`` and ``status``: the project's processes.

``start`` runs the project's supervisord (run/supervisord.pid), which runs
every stage; ``stop`` ends it (supervisord stops its programs first);
``stop -ALL run`` ends every process that has a pid file in run/, as the
guide shows, including a ``lamson log`` started on its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lamson.cli import pidfiles, project, supervision
from lamson.cli.framework import Command, CommandError, Parser, UsageError, app_options, option


def this_project(args: argparse.Namespace) -> supervision.Project:
    return supervision.Project(project.root_path(args.root))


def refuse_live_or_stale(pidfile: pidfiles.PidFile, force: bool, what: str) -> None:
    """Refuse to start over a live pid file; a stale one only with -FORCE (and then remove it)."""
    pid = pidfile.read()
    if pid is not None and pidfiles.alive(pid) and pidfiles.is_ours(pid):
        raise CommandError(f"{what} is already running (pid {pid}, {pidfile}); stop it first with lamson stop")
    if pidfile.exists():
        if not force:
            raise CommandError(f"stale pid file {pidfile} (pid {pid} is not running); "
                               "give -FORCE to remove it and start")
        pidfile.remove()


# --- start -------------------------------------------------------------------

def configure_start(parser: Parser) -> None:
    option(parser, "FORCE", "force", action="store_true", dest="force", help="start over a stale pid file")
    option(parser, "wait", type=float, default=60.0, metavar="SECONDS",
           help="how long to wait for every program to be up (default 60)")
    option(parser, "reload", action="store_true",
           help="development: router workers re-import changed handler files (LAMSON_RELOAD=1)")
    option(parser, "boot", default=None, metavar="MODULE",
           help="start the program of another boot module (config.queue: the queue processor) "
                "under the running supervisord")
    option(parser, "pid", default=None, metavar="FILE",
           help="accepted as in Lamson 1.x (`lamson start -pid run/queue.pid -boot config.queue`); "
                "supervisord keeps the pid files (run/supervisord.pid)")
    app_options(parser)


def start_boot(args: argparse.Namespace, proj: supervision.Project) -> int:
    """``lamson start -boot config.queue``: the guide's second server, as the project's supervisord program.

    The program is named after the module's last part (``queue``) and is in
    deploy/supervisord.conf with autostart=false; the project must be running.
    """
    name = str(args.boot).rsplit(".", 1)[-1]
    infos = supervision.programs(proj)
    if infos is None:
        raise CommandError(f"the project is not running: run `lamson start` first, then `lamson start -boot {args.boot}`")
    if name not in {info["group"] for info in infos}:
        raise CommandError(f"deploy/supervisord.conf has no [program:{name}] for boot module {args.boot} "
                           f"(add one running `lamson worker -boot {args.boot}`)")
    try:
        supervision.rpc(proj).supervisor.startProcessGroup(name, True)
    except Exception as exc:  # ALREADY_STARTED and friends: say it plainly
        text = str(exc)
        if "ALREADY_STARTED" not in text:
            raise CommandError(f"cannot start {name}: {text} (see logs/{name}.log)") from None
    infos = supervision.programs(proj) or []
    return report_programs([i for i in infos if i["group"] == name], proj)


def start(args: argparse.Namespace) -> int:
    proj = this_project(args)
    if getattr(args, "boot", None) and args.boot != "config.boot":
        return start_boot(args, proj)
    if args.reload:
        # supervisord inherits it, and with it every program; the generated settings read it.
        os.environ["LAMSON_RELOAD"] = "1"
    refuse_live_or_stale(proj.pidfile, args.force, "supervisord")
    if args.force and proj.socket.exists() and supervision.programs(proj) is None:
        proj.socket.unlink()
    check_settings(args, proj)
    preflight(args, proj)
    pid = supervision.launch(proj)
    deadline = time.monotonic() + args.wait
    infos = supervision.wait_settled(proj, args.wait)
    print(f"supervisord started (pid {pid}, {proj.pidfile.path.relative_to(proj.root)})")
    late = wait_listening(args, proj, infos, deadline)
    status = report_programs(infos, proj)
    for host, port, what in late:
        print(f"  {what}: nothing accepts connections on {host}:{port} yet (see logs/)", file=sys.stderr)
    problems = wait_routing(args, deadline) if not status and runs_routers(proj) else []
    for problem in problems:
        print(f"  application: {problem}", file=sys.stderr)
    return status or (1 if late or problems else 0)


def listeners(args: argparse.Namespace, proj: supervision.Project) -> list[tuple[str, str, int, str]]:
    """(program, host, port, what) for every program of deploy/supervisord.conf that listens on a port."""
    from urllib.parse import urlsplit

    conf = project.settings_or_defaults(args.config, args.root)
    text = proj.conf.read_text()
    # (a redis+sentinel:// URL names several hosts: no [program:redis] port to check)
    redis_url = urlsplit(conf.redis_url if not conf.redis_url.startswith("redis+sentinel:") else "redis://")
    found = [
        ("receiver", conf.receiver_config["host"], conf.receiver_config["port"],
         "receiver_config (LAMSON_RECEIVER_PORT)"),
        ("log", conf.relay_config["host"], conf.relay_config["port"],
         "relay_config, the log program's port (LAMSON_RELAY_PORT)"),
        ("redis", redis_url.hostname or "127.0.0.1", redis_url.port or 6379,
         "redis_url (LAMSON_REDIS_URL; or remove [program:redis] to use the Redis already there)"),
        ("web", conf.web_config["host"], conf.web_config["port"], "web_config, lamson web's port (LAMSON_WEB_PORT)"),
    ]
    return [entry for entry in found if f"[program:{entry[0]}]" in text]


def wait_listening(args: argparse.Namespace, proj: supervision.Project, infos: list[dict[str, Any]],
                   deadline: float) -> list[tuple[str, int, str]]:
    """Wait (until ``deadline``) for the running programs' ports to accept connections.

    supervisord calls a program RUNNING once it has lived ``startsecs``; the
    receiver binds its port a moment later, and mail sent in that moment is
    refused. ``lamson start`` returns when the ports answer, so the next
    command (``lamson send``, swaks, a test) finds them. Returns what never did.
    """
    running = {info["name"] for info in infos if info["statename"] == "RUNNING"}
    waiting = [entry for entry in listeners(args, proj) if entry[0] in running]
    return [(host, port, what.split(" (")[0]) for _, host, port, what in wait_ports(waiting, deadline)]


def runs_routers(proj: supervision.Project) -> bool:
    """Whether this host's supervisord conf runs router workers (a front host of several runs none)."""
    return any(name.startswith("router") for name in supervision.autostarted(proj.conf))


def wait_routing(args: argparse.Namespace, deadline: float) -> list[str]:
    """Wait (until ``deadline``) until the application can route (lamson.health); the problems left.

    A router worker is RUNNING for supervisord as soon as it lives, and loads
    the application a moment later: ``lamson start`` and ``lamson wait``
    return when some worker has, so the next message is routed and the next
    ``lamson status`` says 0. A worker that reports a failed load ends the
    wait at once: it retries only every ``boot_retry`` seconds.
    """
    from lamson import health
    from lamson.names import names_for

    conf = project.settings_or_defaults(args.config, args.root)
    try:
        conn = health.connection(conf, timeout=2.0)
    except ValueError as exc:  # a URL redis-py cannot use (lamson check names it)
        return [f"redis_url: {exc}"]
    names = names_for(conf)
    try:
        while True:
            found = health.check(conn, names)
            if found.ok or found.failures or time.monotonic() >= deadline:
                return found.problems
            time.sleep(0.1)
    finally:
        conn.close()


def wait_ports(waiting: list[tuple[str, str, int, str]], deadline: float,
               gave_up: Callable[[], set[str]] | None = None) -> list[tuple[str, str, int, str]]:
    """Poll (program, host, port, what) entries until each accepts connections or ``deadline``.

    Returns those that never did. ``gave_up`` (called about once a second) names
    programs that will not come up any more (supervisord's FATAL): their entries
    are returned at once instead of waited for (``lamson wait``).
    """
    asked = 0.0
    while waiting and time.monotonic() < deadline:
        waiting = [entry for entry in waiting if not project.accepting(entry[1], entry[2])]
        if waiting and gave_up is not None and time.monotonic() - asked >= 1.0:
            asked = time.monotonic()
            if gave_up() & {entry[0] for entry in waiting}:
                break
        if waiting:
            time.sleep(0.1)
    return waiting


def check_settings(args: argparse.Namespace, proj: supervision.Project) -> None:
    """``lamson check -offline`` before anything starts: a wrong setting stops ``lamson start`` here.

    Every program would refuse to start with it anyway (lamson.settings.load), one
    after the other, and end FATAL after supervisord's retries; saying it once,
    before supervisord runs, is quicker and clearer. Warnings are logged (stderr).
    The settings are the ones the programs load: the application that
    deploy/supervisord.conf names (LAMSON_ROOT) when run from its deploy folder.
    """
    from lamson import settings as lsettings

    if not proj.conf.is_file():
        return  # launch() explains
    lsettings.load(args.config, args.root)  # SettingsError: one line, exit 1 (lamson.cli.framework)


def preflight(args: argparse.Namespace, proj: supervision.Project) -> None:
    """Refuse to start programs whose port is already taken: they would only fail in a loop."""
    if not proj.conf.is_file():
        return  # launch() explains
    for _, host, port, what in listeners(args, proj):
        if project.accepting(host, port):
            raise CommandError(f"{host}:{port} is already in use; it is {what}: is another Lamson running?")


def report_programs(infos: list[dict[str, Any]], proj: supervision.Project) -> int:
    """Print one line per program; 1 if any of them is not running."""
    if not infos:
        print("no answer from supervisord yet; see logs/supervisord.log", file=sys.stderr)
        return 1
    failed = 0
    for info in infos:
        state = info["statename"]
        pid = f"pid {info['pid']}" if info.get("pid") else ""
        print(f"  {supervision.full_name(info):<20} {state:<9} {pid:<10} uptime {supervision.uptime(info)}")
        if state == "STOPPED" and not info.get("start"):
            continue  # never started: an autostart=false program (queue: `lamson start -boot config.queue`)
        if state != "RUNNING":
            failed += 1
            log = info.get("stdout_logfile") or ""
            print(f"    {info.get('description', '')} (see {log})", file=sys.stderr)
    return 1 if failed else 0


# --- stop --------------------------------------------------------------------

def configure_stop(parser: Parser) -> None:
    option(parser, "ALL", "all", metavar="DIR", dest="all", default=None,
           help="stop every process that has a .pid file in DIR (e.g. run)")
    option(parser, "pid", metavar="FILE", default=None, help="stop the process in this pid file only")
    option(parser, "KILL", "kill", action="store_true", dest="kill", help="SIGKILL instead of SIGTERM")
    option(parser, "timeout", type=float, default=180.0, metavar="SECONDS",
           help="how long to wait before SIGKILL (default 180: workers finish their job)")
    app_options(parser)


def stop(args: argparse.Namespace) -> int:
    proj = this_project(args)
    if args.all and args.pid:
        raise UsageError("lamson stop: give -ALL DIR or -pid FILE, not both")
    if args.all:
        folder = Path(args.all)
        if not folder.is_dir():
            raise CommandError(f"no directory {args.all}")
        files = sorted(folder.glob("*.pid"), key=lambda p: (p.name != "supervisord.pid", p.name))
    elif args.pid:
        files = [Path(args.pid)]
        if not files[0].exists():
            raise CommandError(f"no pid file {args.pid}")
    else:
        files = [proj.pidfile.path]
        if not files[0].exists():
            print(f"supervisord is not running (no {proj.pidfile.path.relative_to(proj.root)})")
            return 0
    return stop_files(files, args.timeout, args.kill)


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the current directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def stop_files(files: list[Path], timeout: float, kill: bool) -> int:
    """Stop the process of each pid file, as the guide prints it; remove stale files."""
    print(f"Stopping processes with the following PID files: {[shown(f) for f in files]}")
    failures = 0
    for path in files:
        pidfile = pidfiles.PidFile(path)
        pid = pidfile.read()
        if pid is None:
            if pidfile.exists():
                print(f"Removing {shown(path)}: it holds no pid")
                pidfile.remove()
            continue  # already removed, e.g. by supervisord stopping with its children
        if not (pidfiles.alive(pid) and pidfiles.is_ours(pid)):
            print(f"Removing stale pid file {shown(path)} (pid {pid} is not running)")
            pidfile.remove()
            continue
        print(f"Attempting to stop lamson at pid {pid}")
        if pidfiles.stop(pid, timeout, kill):
            pidfile.remove()
        else:
            print(f"pid {pid} ({shown(path)}) did not stop", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


# --- restart -----------------------------------------------------------------

def configure_restart(parser: Parser) -> None:
    option(parser, "timeout", type=float, default=180.0, metavar="SECONDS", help="how long stop waits")
    option(parser, "wait", type=float, default=60.0, metavar="SECONDS", help="how long start waits")
    option(parser, "reload", action="store_true", help="as start -reload")
    app_options(parser)


def restart(args: argparse.Namespace) -> int:
    """Stop, then start; settings that would not start are refused before anything is stopped."""
    proj = this_project(args)
    check_settings(args, proj)  # a typo in settings.py must not turn a restart into an outage
    if proj.pidfile.exists():
        code = stop_files([proj.pidfile.path], args.timeout, False)
        if code:
            return code
    args.force = False
    return start(args)


# --- status ------------------------------------------------------------------

#: ``lamson status`` exit codes; ``lamson status -h``, docs/cli.md and docs/operations.md say the same.
#: 2 is every command's "bad use" (lamson.cli.framework), so "cannot route" is 4.
STATUS_OK = 0
STATUS_PROGRAM_DOWN = 1
STATUS_NOT_RUNNING = 3
STATUS_CANNOT_ROUTE = 4

STATUS_CODES = """Exit codes (the first that applies): 3 supervisord is not running; 1 a program that
should run does not (FATAL, BACKOFF, EXITED, STOPPED after a start; an autostart=false
program never started is fine); 4 the application cannot route: Redis does not answer, a
router worker reports that the application failed to load (the error is printed), or no
router worker is alive; 0 all is well. 2 is bad use, as for every command."""


def configure_status(parser: Parser) -> None:
    option(parser, "pid", metavar="FILE", default=None,
           help="only say whether the process in this pid file runs (Lamson 1.x's form)")
    app_options(parser)


def status_of_pidfile(path: str) -> int:
    """Lamson 1.x's ``status -pid FILE``: one line, and exit 0 whether that process runs or not.

    1.x printed the answer and succeeded either way, and 1.x scripts (``lamson status -pid run/log.pid``
    before ``lamson log``) run under ``set -e``; the answer is the line, ``running`` or ``not running``.
    ``lamson status`` without ``-pid`` keeps its exit codes (:data:`STATUS_CODES`).
    """
    pidfile = pidfiles.PidFile(path)
    pid = pidfile.read()
    if pid is None:
        print(f"not running ({'no pid in' if pidfile.exists() else 'no pid file'} {path})")
        return STATUS_OK
    if not (pidfiles.alive(pid) and pidfiles.is_ours(pid)):
        print(f"not running (stale pid file {path}: pid {pid} is gone or not Lamson's)")
        return STATUS_OK
    print(f"running (pid {pid}, {path})")
    return 0


def status(args: argparse.Namespace) -> int:
    """Programs (state, pid, uptime), the standalone logging server, the application's health, queue depths.

    Exit codes: :data:`STATUS_CODES`. A process that lives is not enough: a
    router worker whose handlers fail to import runs (supervisord says RUNNING)
    and routes nothing, so the workers' own reports in Redis (lamson.health)
    decide whether the application can route.
    """
    if args.pid:
        return status_of_pidfile(args.pid)
    proj = this_project(args)
    pid = proj.pidfile.live_pid()
    running = STATUS_OK
    if pid is None:
        print("supervisord: not running")
        running = STATUS_NOT_RUNNING
    else:
        print(f"supervisord: running (pid {pid})")
        infos = supervision.programs(proj)
        if infos is None:
            print(f"  (no answer on {proj.socket})")
        if infos is None:
            running = STATUS_PROGRAM_DOWN
        for info in infos or []:
            state = info["statename"]
            pid_text = f"pid {info['pid']}" if info.get("pid") else ""
            print(f"  {supervision.full_name(info):<20} {state:<9} {pid_text:<10} uptime {supervision.uptime(info)}")
            never_started = state == "STOPPED" and not info.get("start")
            if state != "RUNNING" and not never_started:
                running = STATUS_PROGRAM_DOWN
    log_pid = pidfiles.PidFile(proj.run_dir / "log.pid").live_pid()
    if log_pid:
        print(f"lamson log: running (pid {log_pid}, run/log.pid)")
    routes = print_health(args)
    print_queues(args)
    if running != STATUS_OK:
        return running
    return STATUS_OK if routes else STATUS_CANNOT_ROUTE


def print_health(args: argparse.Namespace) -> bool:
    """Say whether the application can route (lamson.health); True when it can."""
    from lamson import health
    from lamson.names import names_for

    conf = project.settings_or_defaults(args.config, args.root)
    try:
        found = health.check(health.connection(conf, timeout=5.0), names_for(conf))  # a check must not hang
    except ValueError as exc:  # a URL redis-py cannot use (lamson check names it)
        print(f"application: CANNOT ROUTE\n  redis_url: {exc}")
        return False
    if found.ok:
        print(f"application: {found.summary()}")
        return True
    print("application: CANNOT ROUTE")
    for problem in found.problems:
        print(f"  {problem}")
    return False


def print_queues(args: argparse.Namespace) -> None:
    import time

    from lamson import maildir
    from lamson.names import names_for
    from lamson.spool import key_time

    conf = project.settings_or_defaults(args.config, args.root)
    print("queues:")
    print_rq_queues(conf.redis_url, names_for(conf).namespace)
    folders = (("spool", conf.spool_dir), ("outbox", getattr(conf, "outbox_dir", "run/outbox")),
               ("run/queue", conf.queue_dir), ("undeliverable", conf.undeliverable_dir),
               ("bounced", getattr(conf, "bounced_dir", "run/bounced")))
    for label, folder in folders:
        if conf.spool == "redis" and label in ("spool", "outbox"):
            continue
        path = proj_path(args, folder)
        names = maildir.keys(path, "new")
        flying = maildir.keys(path, "cur")
        if label in ("spool", "outbox"):
            oldest = min((key_time(n) for n in names + [c.split(",", 1)[0] for c in flying]), default=0.0)
            age = f", oldest {time.time() - oldest:.0f}s" if oldest else ""
            detail = f"waiting {len(names)}, in flight {len(flying)}{age}"
        else:
            detail = f"{len(names) + len(flying)}"
        print(f"  {label:<20} {detail:>36}  ({folder})")


def proj_path(args: argparse.Namespace, folder: str) -> Path:
    path = Path(folder)
    return path if path.is_absolute() else project.root_path(args.root) / path


def print_rq_queues(redis_url: str, namespace: str = "lamson") -> None:
    """Depth of each Lamson rq queue, with its failed and scheduled (retrying) jobs."""
    import redis

    from lamson import rqcompat
    from lamson.connection import connect, redact
    from lamson.names import Names

    try:
        conn = connect(redis_url)
        conn.ping()
        ours = Names(namespace)
        for name, waiting, failed, retrying, running in rqcompat.queue_counts(
                conn, namespace, [ours.incoming, ours.outgoing]):
            print(f"  {name:<20} {waiting:>6}  (failed {failed}, retrying {retrying}, running {running})")
    except (redis.RedisError, OSError) as exc:
        print(f"  redis: not reachable at {redact(redis_url)} ({' '.join(str(exc).split())})")


COMMANDS = {
    "start": Command(
        name="start",
        summary="start the application: its supervisord runs redis, receiver, router, relay and log",
        examples=("lamson start", "lamson start -FORCE", "lamson start -reload"),
        configure=configure_start,
        run=start,
        description="Check the settings first (as `lamson check -offline`: an error stops here, exit 1).\n"
                    "Run `supervisord -c deploy/supervisord.conf` for the project in the current directory\n"
                    "(pid file run/supervisord.pid), wait until every program is up and its ports accept\n"
                    "connections (the receiver, the logging server, Redis), and list them.\n"
                    "Refuses to start over a live pid file; -FORCE replaces a stale one. Exit 1 if a\n"
                    "program did not come up (its log is named).",
    ),
    "stop": Command(
        name="stop",
        summary="stop the application's supervisord, or (-ALL run) every process with a pid file",
        examples=("lamson stop", "lamson stop -ALL run", "lamson stop -pid run/log.pid"),
        configure=configure_stop,
        run=stop,
        description="Stop the project's supervisord (which stops its programs first). -ALL DIR stops every\n"
                    "process that has a .pid file in DIR, printing what it stops; stale pid files\n"
                    "(process gone, or the pid now belongs to something else) are removed, not signalled.",
    ),
    "restart": Command(
        name="restart",
        summary="stop, then start the application (after changing config/settings.py)",
        examples=("lamson restart",),
        configure=configure_restart,
        run=restart,
    ),
    "status": Command(
        name="status",
        summary="list the programs (state, pid, uptime) and the depth of every queue",
        examples=("lamson status", "lamson status -pid run/log.pid"),
        configure=configure_status,
        run=status,
        description="List every supervisord program (state, pid, uptime), a standalone `lamson log`, whether\n"
                    "the application can route (the router workers' reports in Redis), the rq queues (waiting,\n"
                    "failed, retrying, running jobs) and the Maildirs (spool, run/queue, undeliverable).\n"
                    + STATUS_CODES + "\n"
                    "With -pid FILE, only whether the process in that pid file runs: one line, running or\n"
                    "not running, exit 0 either way (Lamson 1.x's form).",
    ),
}
