"""``lamson check``: the settings, and what they point at, checked without starting anything.

One line per finding (``error: ...``, ``warning: ...`` or ``note: ...``) on
stdout, then a summary; exit 1 when any finding is an error, 0 otherwise. The
same checks of the settings run at every start (lamson.settings.load: warnings
are logged, an error stops the program with one line naming the setting);
this command adds what only makes sense on demand: Redis answers PING with
the settings' URL, the smart host (``relay_config``) accepts a TCP
connection, and the spool, outbox and parking folders are writable; and it
warns when neither ``authserv_id`` nor ``receiver_hostname`` names the host in
the Authentication-Results it stamps (lamson.settings_check.check_identity).

Before the first ``lamson start`` on one host, the embedded Redis (the
``redis`` program of deploy/supervisord.conf) and the logging server (the
``log`` program, the smart host in development) are not running yet: that is
a note ("started by lamson start"), not an error, so ``lamson check && lamson
start`` works on a fresh project. Once supervisord runs them, they must answer.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from types import ModuleType
from typing import Any

from lamson.cli.framework import EXIT_FAILURE, EXIT_OK, Command, Parser, app_options, option


def configure(parser: Parser) -> None:
    option(parser, "offline", action="store_true",
           help="check the settings only: no Redis, smart host or folder checks")
    option(parser, "timeout", type=float, default=3.0, metavar="SECONDS",
           help="for each connection attempt (default: 3)")
    app_options(parser)


def started_later(module: Any, root: str | None) -> dict[str, str]:
    """What of Redis and the smart host ``lamson start`` will start here, while it has not yet.

    "redis" when the project's supervisord configuration runs the embedded Redis
    (program ``redis``), "log" when its ``log`` program is the smart host
    (``relay_config``'s port, its default); each only while that supervisord is
    not running: once it runs, a program of it that does not answer is an error.
    """
    from lamson.cli import project, supervision

    proj = supervision.Project(project.root_path(root))
    programs = supervision.autostarted(proj.conf)
    if not programs or supervision.programs(proj) is not None:
        return {}
    conf = proj.conf.relative_to(proj.root) if proj.conf.is_relative_to(proj.root) else proj.conf
    later = {}
    if "redis" in programs:
        later["redis"] = f"program redis of {conf}"
    if "log" in programs and log_port(programs["log"], module) == module.relay_config["port"]:
        later["log"] = f"program log of {conf}"
    return later


def log_port(command: str, module: Any) -> int | None:
    """The port the ``log`` program listens on: its ``-port``, else relay_config's (as lamson log does)."""
    words = shlex.split(command)
    for flag in ("-port", "--port"):
        if flag in words[:-1]:
            try:
                return int(words[words.index(flag) + 1])
            except ValueError:
                return None
    port = module.relay_config.get("port")
    return port if isinstance(port, int) else None


def run(args: argparse.Namespace) -> int:
    from lamson import settings as lsettings
    from lamson.settings_check import ERROR, NOTE, WARNING, Finding, check, check_identity, check_services
    from lamson.web.security import exposure_findings

    quiet = logging.getLogger("lamson.settings")
    was = quiet.disabled
    quiet.disabled = True  # load() would log the same findings: printed below instead, once
    try:
        findings: list[Finding] = []
        module: ModuleType | None
        try:
            module = lsettings.load(args.config, args.root, strict=False)
        except lsettings.SettingsError as exc:
            loaded = sys.modules.get(lsettings.settings_name(args.config))
            if loaded is None:
                raise  # cannot import it at all: one line from the framework
            findings = check(loaded)
            if not any(f.level == ERROR for f in findings):
                findings.append(Finding(ERROR, "", str(exc)))
            module = None
        else:
            findings = check(module) + check_identity(module)
            findings += [Finding(WARNING, "web_config", text)
                         for text in exposure_findings(module, lsettings.project_root(args.root))]
    finally:
        quiet.disabled = was
    if module is not None and not args.offline:
        findings += check_services(module, lsettings.project_root(args.root), timeout=args.timeout,
                                   started_later=started_later(module, args.root))
    for finding in findings:
        print(finding)
    errors = sum(1 for f in findings if f.level == ERROR)
    notes = sum(1 for f in findings if f.level == NOTE)
    warnings = len(findings) - errors - notes
    if module is None and not args.offline:
        print("(services not checked: the settings do not load)")
    if errors or warnings:
        print(f"{errors} error(s), {warnings} warning(s)")
    elif args.offline or module is None:
        print("settings OK")
    elif notes:
        print("settings OK; folders writable; the rest is started by lamson start")
    else:
        print("settings OK; Redis, smart host and folders reachable")
    return EXIT_FAILURE if errors else EXIT_OK


COMMANDS = {
    "check": Command(
        name="check",
        summary="check the settings (typos, types) and that Redis, the smart host and the spool are reachable",
        examples=("lamson check", "lamson check -config config.settings -root /srv/myapp", "lamson check -offline",
                  "lamson check && lamson start"),
        configure=configure,
        run=run,
        description=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    ),
}
