"""``lamson check``: the settings, and what they point at, checked without starting anything.

One line per finding (``error: ...`` or ``warning: ...``) on stdout, then a
summary; exit 1 when any finding is an error, 0 otherwise. The same checks
of the settings run at every start (lamson.settings.load logs them); this
command adds what only makes sense on demand: Redis answers PING with the
settings' URL, the smart host (``relay_config``) accepts a TCP connection,
and the spool, outbox and parking folders are writable.
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

from lamson.cli.framework import EXIT_FAILURE, EXIT_OK, Command, Parser, app_options, option


def configure(parser: Parser) -> None:
    option(parser, "offline", action="store_true",
           help="check the settings only: no Redis, smart host or folder checks")
    option(parser, "timeout", type=float, default=3.0, metavar="SECONDS",
           help="for each connection attempt (default: 3)")
    app_options(parser)


def run(args: argparse.Namespace) -> int:
    from lamson import settings as lsettings
    from lamson.settings_check import ERROR, Finding, check, check_services

    quiet = logging.getLogger("lamson.settings")
    was = quiet.disabled
    quiet.disabled = True  # load() would log the same findings: printed below instead, once
    try:
        findings: list[Finding] = []
        module: ModuleType | None
        try:
            module = lsettings.load(args.config, args.root)
        except lsettings.SettingsError as exc:
            loaded = sys.modules.get(lsettings.settings_name(args.config))
            if loaded is None:
                raise  # cannot import it at all: one line from the framework
            findings = check(loaded)
            if not any(f.level == ERROR for f in findings):
                findings.append(Finding(ERROR, "", str(exc)))
            module = None
        else:
            findings = check(module)
    finally:
        quiet.disabled = was
    if module is not None and not args.offline:
        findings += check_services(module, lsettings.project_root(args.root), timeout=args.timeout)
    for finding in findings:
        print(finding)
    errors = sum(1 for f in findings if f.level == ERROR)
    warnings = len(findings) - errors
    if module is None and not args.offline:
        print("(services not checked: the settings do not load)")
    print(f"{errors} error(s), {warnings} warning(s)" if findings else "settings OK"
          + ("" if args.offline or module is None else "; Redis, smart host and folders reachable"))
    return EXIT_FAILURE if errors else EXIT_OK


COMMANDS = {
    "check": Command(
        name="check",
        summary="check the settings (typos, types) and that Redis, the smart host and the spool are reachable",
        examples=("lamson check", "lamson check -config config.settings -root /srv/myapp", "lamson check -offline"),
        configure=configure,
        run=run,
        description=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    ),
}
