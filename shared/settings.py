"""Loading an application's ``config/settings.py``.

The guide's settings are plain Python variables in a module. Every process
(receiver, router worker, relay worker, CLI) loads the same module, chosen by
``--config`` or ``LAMSON_SETTINGS`` (default ``config.settings``) with the
project root (``--root`` or ``LAMSON_ROOT``, default the current directory) on
``sys.path``. Missing names get the defaults below, and a few environment
variables override them so that one checkout can be deployed (or tested on
free ports) without editing Python.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lamson.names import BadNamespace, check_namespace

if TYPE_CHECKING:  # re-exported by __getattr__ below: lamson.typed_settings imports this module
    from lamson.typed_settings import Settings as Settings

MiB = 1024 * 1024

#: Every setting a stage reads, with the value it has when the application
#: does not set it. Paths are relative to the directory the process runs in
#: (the project root, as in the guide: ``run/``, ``logs/``).
DEFAULTS: dict[str, Any] = {
    "receiver_config": {"host": "127.0.0.1", "port": 8823},
    # The smart host; also "ssl", "starttls" ("required"/"opportunistic"/False), "username" with
    # "password" (or "password_file", "password_env"), "lmtp", "verify" (True), "ca_file".
    # {"mx": True}: no smart host, delivery by MX ("mx_port": 25). README, docs/security.md.
    "relay_config": {"host": "127.0.0.1", "port": 8825},
    "handlers": [],
    "router_defaults": {},
    "template_config": {"dir": "app", "module": "templates"},
    "redis_url": "redis://127.0.0.1:6379/0",
    # Every rq queue name and Redis key derives from this (lamson.names): applications
    # with different namespaces share a Redis without touching each other's mail or state.
    "namespace": "lamson",
    # "maildir" (default: files under spool_dir) or "redis" (Redis with AOF).
    "spool": "maildir",
    "spool_dir": "run/spool",
    # The Maildir the logging server (`lamson log`) fills and mutt reads.
    "queue_dir": "run/queue",
    # Parked incoming mail (no handler took it, a handler crashed, attempts used up).
    "undeliverable_dir": "run/undeliverable",
    # Replies waiting for the relay (the outbox), and replies parked after bouncing or expiring.
    "outbox_dir": "run/outbox",
    "bounced_dir": "run/bounced",
    "log_dir": "logs",
    "run_dir": "run",
    # Receiver limits.
    "max_message_size": 32 * MiB,
    # RCPT per message (452 beyond it) for unauthenticated clients: low, because each accepted
    # recipient can draw an automatic reply. Clients that authenticated on the submission
    # listener get submission_max_recipients instead.
    "max_recipients": 20,
    "submission_max_recipients": 100,
    # STARTTLS on the receiver (docs/security.md): None, or {"cert": "config/tls/cert.pem",
    # "key": "config/tls/key.pem", "require": False}; "require": True refuses MAIL before
    # STARTTLS (530 5.7.0).
    "receiver_tls": None,
    # A submission listener in the receiver process: None, or {"host": "0.0.0.0", "port": 587,
    # "users": "config/submission_users"}. Needs receiver_tls: STARTTLS is required there, then
    # AUTH PLAIN/LOGIN against the users file (`lamson passwd USER`); authenticated clients may
    # send to any domain, others only to served_domains, as on receiver_config.
    "submission_config": None,
    # Guessing AUTH passwords (lamson.receiver.authlimit, docs/security.md): failed attempts are
    # counted per account and per client address, in Redis, for every receiver. The first
    # auth_free_failures in auth_failure_window seconds pass at once (a mistyped password costs
    # nothing); each further one waits for a gate of 1 s, 2 s, 4 s... up to auth_max_delay seconds,
    # and attempts while a gate is closed are answered 454 4.7.0 unchecked.
    "auth_free_failures": 5,
    "auth_failure_window": 900,
    "auth_max_delay": 600,
    "smtp_timeout": 300,
    # Routing jobs: how long one may run, and how often a failing one is retried.
    "job_timeout": 45,
    "route_retries": [10, 60, 300],
    # Relay: SMTP timeout and retry schedule (seconds) for 4xx and connection failures.
    "relay_timeout": 30,
    "relay_retries": [5, 30, 120, 600, 1800],
    # Delivery by MX: deliveries to one domain at once, across all relay workers (0: no limit).
    "relay_domain_concurrency": 20,
    # Conversation locks (seconds): expiry of a lock whose holder died, and wait.
    "lock_timeout": 30,
    "lock_wait": 10,
    # Sweeper: messages due this long with no worker on them get a wake-up.
    "sweep_grace": 10,
    "sweep_interval": 15,
    # Seconds a worker's liveness key lives (refreshed three times as often): the claims of a
    # worker or host that died go back to waiting about two TTLs after it stopped answering.
    "worker_ttl": 15,
    "worker_nice": 5,
    # Empty files kept ready in the spool's and the outbox's free/ (lamson.recycle).
    "spool_reserve": 500,
    # DNS for delivery by MX and sender authentication (lamson.dns): None uses the system's
    # resolver; {"nameservers": ["127.0.0.1"], "port": 53, "timeout": 5.0} names others.
    "dns_config": None,
    # Sender authentication of incoming mail (lamson.authres, docs/mail.md): SPF, DKIM and DMARC
    # computed by the router worker before routing, read by handlers as message.auth and an
    # Authentication-Results header. On by default: it costs a few DNS lookups per message, each
    # bounded by dns_config's timeout and all of them by auth_timeout (seconds); with no DNS
    # reachable the results are "temperror" and the mail is routed all the same.
    "auth_results": True,
    "auth_timeout": 3.0,
    # The name in our Authentication-Results headers (None: receiver_hostname, else the host name).
    "authserv_id": None,
    # Park (with the reason) incoming mail that fails DMARC when its domain publishes p=reject.
    "dmarc_reject_park": False,
    # DKIM signing of outgoing mail in the relay (lamson.relay.dkim): None, or {"domain": "example.com",
    # "selector": "mail2026", "key_file": "config/dkim.key"} (+ optional "headers": [...], "sign_all": True).
    "dkim_config": None,
    # A router worker whose application fails to load (a syntax error in a handler) says why and
    # tries again this often (seconds) instead of exiting, so the fix is picked up by itself.
    "boot_retry": 30,
    # A message is parked (with the reason) after this many failed attempts: workers that died
    # holding it, or errors outside the handlers. A busy conversation or Redis trouble costs none.
    "max_attempts": 5,
    # Relay: how long (seconds) temporary failures may go on before the sender gets a DSN.
    "relay_lifetime": 5 * 24 * 3600,
    # Receiver defences (docs/security.md). Domains (or regexes) the application receives
    # mail for; None derives them from router_defaults["host"]; neither: only postmaster.
    "served_domains": None,
    # More Received headers than this is a mail loop: 554 5.4.6.
    "max_received_headers": 30,
    # Open SMTP sessions at once; the next client gets 421 and is disconnected.
    "max_connections": 200,
    # Open sessions from one client (an IPv4 address, or an IPv6 /64): 421 4.7.0 beyond it,
    # so one client cannot take every slot. 20 is what a Postfix in front opens by default.
    "max_connections_per_ip": 20,
    # Seconds a session may spend outside a mail transaction (from the greeting, or the end
    # of the last one, to an accepted MAIL FROM) before 421 4.4.2: idle sockets free their slot.
    "smtp_start_timeout": 20,
    # Wall-clock limit of one SMTP session (seconds), however busy the client keeps it.
    "smtp_session_timeout": 1800,
    # Bind receiver_config as root, then run as this user (None: stay who started it).
    "receiver_user": None,
    # The name the receiver gives in its greeting and Received headers (None: the host name).
    "receiver_hostname": None,
    # Prefix of conversation state and lock keys (None: the namespace's, lamson.names).
    "state_prefix": None,
    # Mail loops (lamson.loops, docs/security.md). The installation named in the relay's
    # X-Lamson-Loop trace header (None: LAMSON_HOSTNAME, else the host name); set one value
    # on every host of a multi-host deployment.
    "loop_name": None,
    # Incoming mail carrying our trace more than this many times is parked, not routed.
    "max_loop_traces": 1,
    # The application's own admission checks (lamson.workers.admission, docs/mail.md "Admission checks"):
    # dotted names of callables check(m) -> reason | None, run after the built-in ones before any handler.
    "admission_checks": [],
    # Automatic mail (sent by handlers, DSNs) to one address per minute; more is parked in
    # bounced_dir. 0: no limit. High enough for a person in a lively conversation (or a test
    # client sending a burst), low enough to bound a loop nothing else caught.
    "reply_rate_limit": 60,
    # Unsolicited automatic mail (lamson.confirm's confirmation requests, an application's help or
    # refusal answers: mail to an address that proved nothing) to one address per clock hour, per
    # application, counted in Redis; more is not sent. Anyone can name a victim as the sender, so this
    # stays small; mail to proven addresses (a list's copies to members) is not counted. 0: no cap.
    "unsolicited_per_hour": 5,
    # Where `lamson metrics` serves Prometheus metrics (docs/operations.md).
    "metrics_config": {"host": "127.0.0.1", "port": 9108},
    # Where `lamson web` (the development inbox and pipeline pages, docs/web.md) listens. It refuses an
    # address other than loopback unless web_password is set (or run/web.token exists).
    "web_config": {"host": "127.0.0.1", "port": 8880},
    # The password `lamson web` asks for (HTTP Basic, any user name). None: no password, loopback only.
    "web_password": None,
    # How the receiver, router and relay workers write their log lines (lamson.logs, docs/operations.md
    # "Logs"): "text" (one line per event, a traceback as a block of lines) or "json" (one JSON object
    # per line per event, the traceback a field of it).
    "log_format": "text",
}

#: Environment variables that override settings, and how to apply them.
def flag(raw: str) -> bool:
    """An on/off environment value: 1/0, true/false, yes/no, on/off."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


ENV_OVERRIDES: dict[str, tuple[str | tuple[str, str], Callable[[str], Any]]] = {
    "LAMSON_REDIS_URL": ("redis_url", str),
    "LAMSON_NAMESPACE": ("namespace", str),
    "LAMSON_SPOOL": ("spool", str),
    "LAMSON_SPOOL_DIR": ("spool_dir", str),
    "LAMSON_RECEIVER_HOST": (("receiver_config", "host"), str),
    "LAMSON_RECEIVER_PORT": (("receiver_config", "port"), int),
    "LAMSON_RELAY_HOST": (("relay_config", "host"), str),
    "LAMSON_RELAY_PORT": (("relay_config", "port"), int),
    "LAMSON_METRICS_HOST": (("metrics_config", "host"), str),
    "LAMSON_METRICS_PORT": (("metrics_config", "port"), int),
    "LAMSON_WEB_HOST": (("web_config", "host"), str),
    "LAMSON_WEB_PORT": (("web_config", "port"), int),
    # Sender authentication's DNS lookups off (a machine with no DNS, or a test suite that must
    # not send DNS queries anywhere but its own loopback server).
    "LAMSON_AUTH_RESULTS": ("auth_results", flag),
}


class SettingsError(Exception):
    """The settings module cannot be found or holds a value no stage can use."""


def settings_name(name: str | None = None) -> str:
    """The dotted name of the settings module: argument, then LAMSON_SETTINGS."""
    return name or os.environ.get("LAMSON_SETTINGS") or "config.settings"


def project_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The directory that holds ``config/`` and ``app/``: argument, LAMSON_ROOT, or cwd."""
    return Path(root or os.environ.get("LAMSON_ROOT") or os.getcwd()).resolve()


def app_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where the application's settings are: :func:`project_root`, or, run from a deploy directory
    whose application lives elsewhere (this repository: ``deploy/`` at the top, the demo in
    ``examples/demo``), the one ``deploy/supervisord.conf`` runs (its ``LAMSON_ROOT=``) — so
    ``lamson check``, ``lamson queue -requeue`` and friends work from where the deploy files are.
    """
    top = project_root(root)
    if root or os.environ.get("LAMSON_ROOT") or (top / "config").is_dir():
        return top
    found = root_from_deploy(top)
    return found if found is not None and (found / "config").is_dir() else top


def root_from_deploy(directory: Path) -> Path | None:
    """The application directory ``deploy/supervisord.conf`` here runs (its LAMSON_ROOT), if it names one."""
    import re

    conf = directory / "deploy" / "supervisord.conf"
    try:
        text = conf.read_text()
    except OSError:
        return None
    found = re.search(r'LAMSON_ROOT="([^"]+)"', text)
    if not found:
        return None
    return Path(found.group(1).replace("%(here)s", str(conf.parent))).resolve()


def load(name: str | None = None, root: str | os.PathLike[str] | None = None, *,
         strict: bool = True) -> ModuleType:
    """Import the settings module, fill in defaults and apply environment overrides.

    The module object itself is returned (and stays in ``sys.modules``), so
    ``from config import settings`` in application code sees the same values
    and the services that ``config/boot.py`` assigns to it.

    The settings are checked as ``lamson check`` does (lamson.settings_check):
    warnings (a typo's "did you mean") are logged, and an error (a wrong type,
    a value out of range) is a :class:`SettingsError` naming the setting, so a
    program refuses to start (one line, exit 1: supervisord marks it FATAL)
    instead of starting and failing on every message, as a receiver with
    ``max_message_size = "10MB"`` did. ``strict=False`` (``lamson check``,
    which prints every finding itself) leaves the errors to the caller.
    """
    dotted = settings_name(name)
    top = str(app_root(root) if dotted == "config.settings" else project_root(root))
    if top not in sys.path:
        sys.path.insert(0, top)
    try:
        module = importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        if exc.name and dotted.startswith(exc.name):
            raise SettingsError(
                f"cannot import settings module {dotted!r} from {top} "
                "(run from the project root, or pass --root/--config)"
            ) from exc
        raise
    apply_defaults(module)
    apply_environment(module, os.environ)
    from lamson.settings_check import ERROR, report

    # typos ("did you mean"): one log line each (docs/operations.md); errors: refused below
    errors = [f.line for f in report(module, log_errors=not strict) if f.level == ERROR]
    if strict and errors:
        raise SettingsError(f"{shown_file(module)}: {'; '.join(errors)} (lamson check -offline lists every finding)")
    validate(module)
    apply_credentials(module, top)
    return module


def load_typed(name: str | None = None, root: str | os.PathLike[str] | None = None) -> Settings:
    """:func:`load`, then the typed view a process keeps (lamson.typed_settings.Settings)."""
    from lamson.typed_settings import Settings

    return Settings.of(load(name, root))


if not TYPE_CHECKING:  # mypy sees the import above; a module __getattr__ would hide every typo'd name
    def __getattr__(name: str) -> Any:
        """``from lamson.settings import Settings``: imported on first use, as its module imports this one."""
        if name == "Settings":
            from lamson.typed_settings import Settings

            return Settings
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def shown_file(module: ModuleType) -> str:
    """The settings file as a person would name it: relative to the current directory when inside it."""
    path = getattr(module, "__file__", None)
    if not path:
        return module.__name__
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def apply_defaults(module: ModuleType) -> None:
    """Give the module every setting it does not define, as a private copy."""
    for key, value in DEFAULTS.items():
        if not hasattr(module, key):
            setattr(module, key, copy.deepcopy(value))
        elif isinstance(value, dict) and isinstance(getattr(module, key), dict):
            merged = copy.deepcopy(value)
            merged.update(getattr(module, key))
            setattr(module, key, merged)


def apply_environment(module: ModuleType | SimpleNamespace, environ: os._Environ[str] | dict[str, str]) -> None:
    """Apply LAMSON_* overrides; a malformed value is a SettingsError, not a crash later."""
    for var, (target, kind) in ENV_OVERRIDES.items():
        raw = environ.get(var)
        if raw is None or raw == "":
            continue
        try:
            value = kind(raw)
        except ValueError as exc:
            raise SettingsError(f"{var}={raw!r} is not a valid {getattr(kind, '__name__', 'value')}") from exc
        if isinstance(target, tuple):
            section, key = target
            getattr(module, section)[key] = value
        else:
            setattr(module, target, value)


def validate(module: ModuleType | SimpleNamespace) -> None:
    """Refuse settings that would only fail later, far from their cause."""
    if module.spool not in ("maildir", "redis"):
        raise SettingsError(f"spool must be 'maildir' or 'redis', not {module.spool!r}")
    for section in ("receiver_config", "relay_config"):
        port = getattr(module, section).get("port")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise SettingsError(f"{section}['port'] must be a port number, not {port!r}")
    try:
        check_namespace(module.namespace)
    except BadNamespace as exc:
        raise SettingsError(str(exc)) from None
    scheme = urlsplit(module.redis_url).scheme
    if scheme == "redis+sentinel":  # Redis Sentinel (lamson.connection.parse_sentinel_url)
        from lamson.connection import parse_sentinel_url, redact

        try:
            parse_sentinel_url(module.redis_url)
        except ValueError as exc:
            raise SettingsError(f"redis_url {redact(module.redis_url)!r}: {exc}") from None
    elif scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(f"redis_url must be a redis://, rediss://, unix:// or redis+sentinel:// URL, "
                            f"not {module.redis_url!r}")


def apply_credentials(module: ModuleType | SimpleNamespace, root: str | os.PathLike[str] | None = None) -> None:
    """Give a ``redis_url`` without a password the embedded Redis's generated one.

    The embedded Redis (``lamson redis``) always requires a password: the one in
    ``redis_url`` if it has one, else one generated on first use into
    ``run_dir/redis.pass`` (mode 0600). Every process loads its settings through
    here, so each one connects with it and nobody types it (docs/security.md, "Redis").
    """
    from lamson.connection import with_credentials

    setattr(module, "redis_url", with_credentials(module.redis_url, module.run_dir, root))  # noqa: B010


def ensure_credentials(module: ModuleType | SimpleNamespace) -> None:
    """Like :func:`apply_credentials`, generating the password file first if there is none.

    The programs of deploy/supervisord.conf (``lamson redis``, ``receiver``,
    ``worker``, ``relay``) start together, so whichever starts first writes
    ``run_dir/redis.pass`` (atomically: they all end up with the same one) and no
    stage ever starts without the password the embedded Redis is about to require.
    A ``redis_url`` with a password of its own is left alone.
    """
    from lamson.connection import PASSWORD_FILE, ensure_password, url_password, with_password

    if url_password(module.redis_url) is None:
        password = ensure_password(Path(module.run_dir) / PASSWORD_FILE)
        setattr(module, "redis_url", with_password(module.redis_url, password))  # noqa: B010


def boot(name: str | None = None, root: str | os.PathLike[str] | None = None) -> ModuleType:
    """Load settings, then run the application's boot module (``config.boot``).

    Router workers and ``lamson routes`` need this: the boot module assigns
    services to settings (``settings.relay``, template loader,
    ``Router.load(settings.handlers)``), as the guide describes. The receiver
    never calls it: it runs no application code.
    """
    module = load(name, root)
    run_boot(module)
    return module


def run_boot(settings_module: ModuleType, boot_name: str | None = None) -> None:
    """Import the boot module: ``boot_name``, else LAMSON_BOOT, else ``boot`` beside the settings.

    A boot module that configures logging with ``logging.config.fileConfig``
    (as the guide's does) keeps its handlers and levels, but cannot mute the
    loggers that existed before it ran (Lamson's, rq's): fileConfig's
    ``disable_existing_loggers`` default would otherwise silence the very
    messages that explain a failure (see :func:`lamson.logs.loggers_kept_enabled`).
    """
    from lamson.logs import loggers_kept_enabled

    base = settings_module.__name__
    name = boot_name or os.environ.get("LAMSON_BOOT") or (base.rsplit(".", 1)[0] + ".boot" if "." in base else "boot")
    try:
        with loggers_kept_enabled():
            importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise SettingsError(f"cannot import boot module {name!r} (expected beside {base})") from exc
