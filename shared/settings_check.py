"""Settings that are checked: typos, wrong types, unreachable services.

Every stage loads its settings through :func:`lamson.settings.load`, which
calls :func:`report`: each warning becomes one log line at start, and the
errors stop the program there, in one line naming the setting (a receiver
started with a wrong ``max_message_size`` used to drop every connection)::

    relay_confg: unknown setting, did you mean relay_config?
    lamson receiver: config/settings.py: receiver_config['port']: must be an integer port number, not '8823' (a str) (...)

``lamson check`` (lamson.cli.check) runs :func:`check` too, plus
:func:`check_services` (Redis answers PING, the smart host accepts a TCP
connection, the spool folders are writable), prints one line per finding and
exits non-zero on errors, without starting anything.

Unknown names: a settings module is plain Python, and applications keep
their own values in it (``database_config``, ``queue_config``, anything their
handlers read), so an unknown name is reported only when it is within a
small edit distance of a setting Lamson knows (difflib's ratio ≥ 0.8): that
is the typo that would otherwise pass silently. Imports, modules, functions,
classes, private and upper-case names are never reported.

An *error* is a value no stage can use (a port that is not an integer, a
list setting given as a string, a retry schedule of words, a size of 0); a
*warning* is one that works but is probably not what was meant (a key the
section does not know, a set where an ordered list is documented); a *note*
(``lamson check`` only) is no problem at all: what ``lamson start`` will start.
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from lamson.logs import FORMATS as LOG_FORMATS

log = logging.getLogger("lamson.settings")

ERROR = "error"
WARNING = "warning"
#: Not a problem, said so nobody wonders (lamson check: what ``lamson start`` will start).
NOTE = "note"

#: Names a guide-style settings.py holds that are the application's (or the guide's) own,
#: read by config/boot.py, config/queue.py or handlers; never reported, and never proposed.
APPLICATION_NAMES = frozenset({
    "database_config", "queue_config", "queue_handlers", "router_reload", "relay", "receiver",
    "database", "template_loader", "view_loader",
})

#: The keys each dict setting knows (a key outside them is a warning with a "did you mean").
SECTION_KEYS: dict[str, frozenset[str]] = {
    "receiver_config": frozenset({"host", "port"}),
    # username/password/ssl/starttls/lmtp/debug: Lamson 1.x's Relay arguments (relay.client).
    "relay_config": frozenset({"host", "port", "username", "password", "ssl", "starttls", "lmtp", "debug",
                               "password_file", "password_env", "verify", "ca_file", "mx", "mx_port"}),
    "template_config": frozenset({"dir", "module"}),
    "metrics_config": frozenset({"host", "port"}),
    "web_config": frozenset({"host", "port"}),
    "receiver_tls": frozenset({"cert", "key", "require"}),
    "submission_config": frozenset({"host", "port", "users"}),
    "dns_config": frozenset({"nameservers", "port", "timeout"}),
    "dkim_config": frozenset({"domain", "selector", "key_file", "headers", "sign_all"}),
}

INT = "int"
NUMBER = "number"
BOOL = "bool"
STR = "str"
OPTIONAL_STR = "optional str"
STR_LIST = "list of str"
NUMBER_LIST = "list of numbers"
DICT = "dict"
OPTIONAL_DICT = "optional dict"
OPTIONAL_STR_LIST = "optional list of str"

#: What type each setting must have. Every name of lamson.settings.DEFAULTS is here (a test
#: keeps it so): a value of the wrong type is an error at every start, not a crash later.
TYPES: dict[str, str] = {
    "receiver_config": DICT, "relay_config": DICT, "metrics_config": DICT, "web_config": DICT,
    "router_defaults": DICT, "template_config": DICT,
    "receiver_tls": OPTIONAL_DICT, "submission_config": OPTIONAL_DICT, "dns_config": OPTIONAL_DICT,
    "dkim_config": OPTIONAL_DICT,
    "handlers": STR_LIST, "admission_checks": STR_LIST, "route_retries": NUMBER_LIST, "relay_retries": NUMBER_LIST,
    "served_domains": OPTIONAL_STR_LIST,
    "redis_url": STR, "namespace": STR, "spool": STR, "spool_dir": STR, "queue_dir": STR,
    "undeliverable_dir": STR, "outbox_dir": STR, "bounced_dir": STR, "log_dir": STR, "run_dir": STR,
    "receiver_user": OPTIONAL_STR, "loop_name": OPTIONAL_STR, "receiver_hostname": OPTIONAL_STR,
    "state_prefix": OPTIONAL_STR, "authserv_id": OPTIONAL_STR, "web_password": OPTIONAL_STR,
    "auth_results": BOOL, "dmarc_reject_park": BOOL,
    "max_message_size": INT, "max_recipients": INT, "submission_max_recipients": INT, "max_attempts": INT,
    "max_received_headers": INT, "max_connections": INT, "max_connections_per_ip": INT, "max_loop_traces": INT,
    "reply_rate_limit": INT, "unsolicited_per_hour": INT, "relay_domain_concurrency": INT,
    "job_timeout": INT, "worker_ttl": NUMBER, "worker_nice": INT, "spool_reserve": INT,
    "smtp_timeout": NUMBER, "relay_timeout": NUMBER, "lock_timeout": NUMBER, "lock_wait": NUMBER,
    "sweep_grace": NUMBER, "sweep_interval": NUMBER, "relay_lifetime": NUMBER,
    "smtp_start_timeout": NUMBER, "smtp_session_timeout": NUMBER, "boot_retry": NUMBER, "auth_timeout": NUMBER,
    "log_format": STR,
    "auth_free_failures": INT, "auth_failure_window": NUMBER, "auth_max_delay": NUMBER,
}

#: Inclusive bounds of numeric settings (None: unbounded on that side). A size, a count of
#: sessions or a timeout of 0 or less would make the stage refuse everything or spin; where 0
#: means "no limit" or "off" (reply_rate_limit, relay_domain_concurrency, spool_reserve,
#: smtp_start_timeout) it is allowed. Retry schedules: each delay at least 0.
POSITIVE = 1e-9
RANGES: dict[str, tuple[float | None, float | None]] = {
    **{name: (1, None) for name in (
        "max_message_size", "max_recipients", "submission_max_recipients", "max_attempts",
        "max_received_headers", "max_connections", "max_connections_per_ip", "job_timeout",
        "auth_free_failures")},
    **{name: (POSITIVE, None) for name in (
        "worker_ttl", "smtp_timeout", "relay_timeout", "lock_timeout", "sweep_interval",
        "smtp_session_timeout", "boot_retry", "auth_timeout", "auth_failure_window", "auth_max_delay")},
    **{name: (0, None) for name in (
        "spool_reserve", "reply_rate_limit", "unsolicited_per_hour", "relay_domain_concurrency", "max_loop_traces", "lock_wait",
        "sweep_grace", "smtp_start_timeout", "relay_lifetime")},
    "worker_nice": (-20, 19),
}

#: What an integer setting counts, said when it is given as something else ("10MB").
UNITS = {"max_message_size": "number of bytes (e.g. 10 * 1024 * 1024)", "spool_reserve": "number of files"}

#: Keys a dict setting must have when it is set (the stage that reads it refuses to start without).
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "receiver_tls": ("cert", "key"),
    "submission_config": ("host", "port", "users"),
    "dkim_config": ("domain", "selector", "key_file"),
}


@dataclass(frozen=True)
class Finding:
    """One problem: ``level`` is "error" or "warning"; ``line`` is what is printed or logged."""

    level: str
    setting: str
    message: str

    @property
    def line(self) -> str:
        return f"{self.setting}: {self.message}" if self.setting else self.message

    def __str__(self) -> str:
        return f"{self.level}: {self.line}"


def known_settings() -> set[str]:
    from lamson.settings import DEFAULTS

    return set(DEFAULTS)


def _kind(value: Any) -> str:
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _looks_like_setting(name: str, value: Any) -> bool:
    if name.startswith("_") or name != name.lower() or name in APPLICATION_NAMES:
        return False
    return not (isinstance(value, ModuleType) or isinstance(value, type) or callable(value))


def unknown_names(module: ModuleType | SimpleNamespace) -> list[Finding]:
    """Names close to a known setting but not one: the typos."""
    known = known_settings()
    candidates = sorted(known)
    findings = []
    for name, value in sorted(vars(module).items()):
        if name in known or not _looks_like_setting(name, value):
            continue
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.8)
        if close:
            findings.append(Finding(WARNING, name, f"unknown setting, did you mean {close[0]}?"))
    return findings


def _type_finding(name: str, value: Any, want: str) -> Finding | None:
    shown = f"{value!r} (a {_kind(value)})"
    if want == INT and not _is_int(value):
        unit = UNITS.get(name)
        return Finding(ERROR, name, f"must be an integer{' ' + unit if unit else ''}, not {shown}")
    if want == NUMBER and not _is_number(value):
        return Finding(ERROR, name, f"must be a number of seconds, not {shown}")
    if want == STR and not isinstance(value, str):
        return Finding(ERROR, name, f"must be a string, not {shown}")
    if want == OPTIONAL_STR and value is not None and not isinstance(value, str):
        return Finding(ERROR, name, f"must be a string or None, not {shown}")
    if want == DICT and not isinstance(value, dict):
        return Finding(ERROR, name, f"must be a dict, not {shown}")
    if want == OPTIONAL_DICT and value is not None and not isinstance(value, dict):
        return Finding(ERROR, name, f"must be a dict or None, not {shown}")
    if want == BOOL and not (isinstance(value, bool) or value in (0, 1) and _is_int(value)):
        return Finding(ERROR, name, f"must be True or False, not {shown}")
    if want in (STR_LIST, NUMBER_LIST, OPTIONAL_STR_LIST):
        if want == OPTIONAL_STR_LIST and value is None:
            return None
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple | set | frozenset):
            return Finding(ERROR, name, f"must be a list, not {shown}")
        ok = _is_number if want == NUMBER_LIST else (lambda item: isinstance(item, str))
        bad = [item for item in value if not ok(item)]
        if bad:
            what = "numbers of seconds" if want == NUMBER_LIST else "strings"
            return Finding(ERROR, name, f"must be a list of {what}; {bad[0]!r} (a {_kind(bad[0])}) is not one")
        if want == NUMBER_LIST and any(item < 0 for item in value):
            return Finding(ERROR, name, f"must be a list of delays of 0 seconds or more, not {value!r}")
        if isinstance(value, set | frozenset):
            return Finding(WARNING, name, f"is a {_kind(value)}, which has no order; a list is expected")
    return None


def _range_finding(name: str, value: Any) -> Finding | None:
    """A number outside RANGES[name] (called once the type is known to be right)."""
    low, high = RANGES.get(name, (None, None))
    if low is not None and value < low:
        least = "more than 0" if low == POSITIVE else f"at least {low}"
        return Finding(ERROR, name, f"must be {least}, not {value!r}")
    if high is not None and value > high:
        return Finding(ERROR, name, f"must be at most {high}, not {value!r}")
    return None


def wrong_types(module: ModuleType | SimpleNamespace) -> list[Finding]:
    """Values of known settings that have the wrong type, and dict sections with unknown keys."""
    findings = []
    for name, want in TYPES.items():
        if not hasattr(module, name):
            continue
        value = getattr(module, name)
        found = _type_finding(name, value, want)
        if found is not None:
            findings.append(found)
            continue
        if name in RANGES:
            out_of_range = _range_finding(name, value)
            if out_of_range is not None:
                findings.append(out_of_range)
            continue
        if value is None:
            continue
        if name in ("receiver_config", "relay_config", "metrics_config", "web_config", "submission_config"):
            for key in ("host", "port"):
                if name == "submission_config" and key not in value:
                    continue  # REQUIRED_KEYS says it is missing
                item = value.get(key)
                if key == "port" and (not _is_int(item) or not 0 <= item <= 65535):
                    findings.append(Finding(ERROR, f"{name}[{key!r}]",
                                            f"must be an integer port number, not {item!r} (a {_kind(item)})"))
                if key == "host" and not isinstance(item, str):
                    findings.append(Finding(ERROR, f"{name}[{key!r}]", f"must be a host name or address, "
                                                                         f"not {item!r} (a {_kind(item)})"))
        for key in REQUIRED_KEYS.get(name, ()):
            if value.get(key) in (None, ""):
                has = ", ".join(repr(k) for k in value) or "no keys"
                findings.append(Finding(ERROR, name, f"needs {key!r} (it has {has})"))
        keys = SECTION_KEYS.get(name)
        if keys is not None:
            for key in sorted(str(k) for k in value if k not in keys):
                close = difflib.get_close_matches(key, sorted(keys), n=1, cutoff=0.6)
                hint = f", did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(keys))})"
                findings.append(Finding(WARNING, f"{name}[{key!r}]", f"unknown key{hint}"))
    spool = getattr(module, "spool", "maildir")
    if isinstance(spool, str) and spool not in ("maildir", "redis"):
        findings.append(Finding(ERROR, "spool", f"must be 'maildir' or 'redis', not {spool!r}"))
    log_format = getattr(module, "log_format", "text")
    if isinstance(log_format, str) and log_format not in LOG_FORMATS:
        close = difflib.get_close_matches(log_format.lower(), LOG_FORMATS, n=1, cutoff=0.5)
        hint = f", did you mean {close[0]!r}?" if close else ""
        findings.append(Finding(ERROR, "log_format", f"must be {' or '.join(map(repr, LOG_FORMATS))}, not {log_format!r}{hint}"))
    return findings


def check(module: ModuleType | SimpleNamespace) -> list[Finding]:
    """What is wrong with these (loaded) settings, without touching the network or the disk."""
    return unknown_names(module) + wrong_types(module)


def check_identity(module: ModuleType | SimpleNamespace) -> list[Finding]:
    """A warning when the name our Authentication-Results carry is left to the host (``lamson check`` only).

    Sender authentication stamps each message with ``Authentication-Results:
    <authserv_id>; ...`` and removes every incoming one that claims that id
    (RFC 8601 §5): handlers trust the header because of that. With neither
    ``authserv_id`` nor ``receiver_hostname`` set, the id is ``socket.getfqdn()``,
    often ``localhost`` or a container's name: not the name a forger has to
    avoid, and not the one the MX is known by (docs/security.md, "Acting on a
    verified sender"). Not reported while ``auth_results`` is off.
    """
    if not getattr(module, "auth_results", True):
        return []
    if getattr(module, "authserv_id", None) or getattr(module, "receiver_hostname", None):
        return []
    host = socket.getfqdn() or "localhost"
    return [Finding(WARNING, "authserv_id", f"not set, nor receiver_hostname: Authentication-Results name this "
                                            f"host as {host!r} (socket.getfqdn), and only incoming ones claiming "
                                            "that name are removed; set authserv_id to the name your MX is known by")]


_reported: set[tuple[str, str]] = set()


def report(module: ModuleType | SimpleNamespace, *, log_errors: bool = True) -> list[Finding]:
    """Log each finding once per process (lamson.settings.load calls this at every start).

    With ``log_errors=False`` only warnings are logged: the caller raises the errors
    (lamson.settings.load refuses to start with them, in one line of its own).
    """
    try:
        findings = check(module)
    except Exception as exc:  # a bug in a check must never be why a stage does not start
        log.debug("settings not checked: %r", exc)
        return []
    origin = getattr(module, "__name__", "settings")
    for finding in findings:
        if (origin, finding.line) in _reported or (finding.level == ERROR and not log_errors):
            continue
        _reported.add((origin, finding.line))
        (log.error if finding.level == ERROR else log.warning)("%s", finding.line)
    return findings


# -- services (lamson check) ---------------------------------------------------


def _writable(path: Path) -> str | None:
    """None when a file can be created in ``path`` (or in the parent it would be created in)."""
    target = path
    while not target.exists():
        if target.parent == target:
            return "no existing parent folder"
        target = target.parent
    if not target.is_dir():
        return f"{target} is not a folder"
    try:
        fd, name = tempfile.mkstemp(dir=target, prefix=".lamson-check-")
    except OSError as exc:
        return f"cannot create a file in {target}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(name)
    return None


def check_services(module: ModuleType | SimpleNamespace, root: str | os.PathLike[str] | None = None, *,
                   timeout: float = 3.0, started_later: dict[str, str] | None = None) -> list[Finding]:
    """Redis answers PING, the smart host accepts a TCP connection, the spool folders are writable.

    ``started_later`` maps "redis" and "log" to how they get started (e.g. "program redis of
    deploy/supervisord.conf") when ``lamson start`` starts them and they are not running yet:
    then refusing connections is how they should be before the start, a :data:`NOTE` rather
    than an error, so ``lamson check && lamson start`` works on a fresh project.
    """
    import redis

    from lamson.connection import connect, redact

    later = started_later or {}
    findings = []
    url = getattr(module, "redis_url", "")
    try:
        conn = connect(url, timeout=timeout)
        try:
            conn.ping()
        finally:
            conn.close()
    except redis.ConnectionError as exc:
        if "redis" in later:
            findings.append(Finding(NOTE, "redis_url", f"Redis at {redact(url)} is not running yet: "
                                                       f"started by lamson start ({later['redis']})"))
        else:
            findings.append(Finding(ERROR, "redis_url", f"Redis at {redact(url)} does not answer PING: {exc}"))
    except Exception as exc:
        findings.append(Finding(ERROR, "redis_url", f"Redis at {redact(url)} does not answer PING: {exc}"))

    relay = getattr(module, "relay_config", {})
    if isinstance(relay, dict) and isinstance(relay.get("host"), str) and _is_int(relay.get("port")):
        host, port = relay["host"], relay["port"]
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except ConnectionRefusedError:
            if "log" in later:
                findings.append(Finding(NOTE, "relay_config", f"the logging server (smart host {host}:{port}) is "
                                                              f"not running yet: started by lamson start ({later['log']})"))
            else:
                findings.append(Finding(ERROR, "relay_config",
                                        f"smart host {host}:{port} does not accept connections: Connection refused"))
        except OSError as exc:
            findings.append(Finding(ERROR, "relay_config",
                                    f"smart host {host}:{port} does not accept connections: {exc.strerror or exc}"))

    base = Path(root) if root is not None else Path.cwd()
    folders = ["undeliverable_dir", "bounced_dir"]
    if getattr(module, "spool", "maildir") == "maildir":
        folders = ["spool_dir", "outbox_dir", *folders]
    for name in folders:
        value = getattr(module, name, None)
        if not isinstance(value, str):
            continue
        problem = _writable(base / value)
        if problem:
            findings.append(Finding(ERROR, name, f"{value} is not writable: {problem}"))
    return findings
