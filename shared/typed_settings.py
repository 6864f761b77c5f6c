"""A typed, read-only view of an application's settings (docs/design.md, "One runtime per process").

The settings stay what the guide says they are: a plain module (``config/settings.py``) that
:func:`lamson.settings.load` fills with ``DEFAULTS``, that handlers import
(``from config import settings``) and that ``config/boot.py`` assigns services onto. That module is
what :attr:`Settings.module` holds, unchanged.

What this adds is one place where a missing setting gets its default, once per process, and a type
per setting that mypy can see. Before it, each stage read ``getattr(settings, "x", DEFAULTS["x"])``
(or a literal that had drifted from ``DEFAULTS``) on every use. A stage now calls
:meth:`Settings.of` once, where it starts, and reads attributes::

    typed = Settings.of(settings)        # a loaded module, a SimpleNamespace (tests), or a Settings
    typed.max_attempts                   # int, from the module or DEFAULTS
    typed.extra("database_config")       # a name of the application's own, read from the module
    typed.module.relay                   # what config/boot.py assigned (the 1.x view)

``DEFAULTS`` (lamson.settings) stays the only source of the default values; the fields below only
name them and give each its type (the accepted types of lamson.settings_check.TYPES), and a test
fails if a ``DEFAULTS`` key has no field or a field no ``DEFAULTS`` key.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any, ClassVar

from lamson.settings import DEFAULTS

_MISSING = object()


@dataclass(frozen=True, eq=False)
class Settings:
    """Every setting Lamson reads, typed, plus the settings module it was read from.

    Frozen: a stage cannot change a setting under another one's feet (assignment raises
    ``dataclasses.FrozenInstanceError``). The dict and list values are the module's own objects,
    not copies (building the view stays cheap); they are typed read-only (Mapping, Sequence) so
    that mypy refuses code that would change them through the view. ``eq=False``: two views
    are the same only if they are the same object, as there is one per process.
    """

    #: The settings module (or the SimpleNamespace a test built): what handlers import, what
    #: ``config/boot.py`` assigns services onto, and where :meth:`extra` reads.
    module: ModuleType | SimpleNamespace

    receiver_config: Mapping[str, Any]
    relay_config: Mapping[str, Any]
    handlers: Sequence[str]
    router_defaults: Mapping[str, Any]
    template_config: Mapping[str, Any]
    redis_url: str
    namespace: str
    spool: str
    spool_dir: str
    queue_dir: str
    undeliverable_dir: str
    outbox_dir: str
    bounced_dir: str
    log_dir: str
    run_dir: str
    max_message_size: int
    max_recipients: int
    submission_max_recipients: int
    receiver_tls: Mapping[str, Any] | None
    submission_config: Mapping[str, Any] | None
    auth_free_failures: int
    auth_failure_window: float
    auth_max_delay: float
    smtp_timeout: float
    job_timeout: int
    route_retries: Sequence[float]
    relay_timeout: float
    relay_retries: Sequence[float]
    relay_domain_concurrency: int
    lock_timeout: float
    lock_wait: float
    sweep_grace: float
    sweep_interval: float
    worker_ttl: float
    worker_nice: int
    spool_reserve: int
    dns_config: Mapping[str, Any] | None
    auth_results: bool
    auth_timeout: float
    authserv_id: str | None
    dmarc_reject_park: bool
    dkim_config: Mapping[str, Any] | None
    boot_retry: float
    max_attempts: int
    relay_lifetime: float
    served_domains: Sequence[str] | None
    max_received_headers: int
    max_connections: int
    max_connections_per_ip: int
    smtp_start_timeout: float
    smtp_session_timeout: float
    receiver_user: str | None
    receiver_hostname: str | None
    state_prefix: str | None
    loop_name: str | None
    max_loop_traces: int
    admission_checks: Sequence[str]
    reply_rate_limit: int
    unsolicited_per_hour: int
    metrics_config: Mapping[str, Any]
    web_config: Mapping[str, Any]
    web_password: str | None
    log_format: str

    #: The setting fields (every field but ``module``), in declaration order.
    NAMES: ClassVar[tuple[str, ...]]

    @classmethod
    def of(cls, source: Settings | ModuleType | SimpleNamespace | Any | None) -> Settings:
        """The typed view of ``source``: a loaded settings module, a SimpleNamespace, or a Settings.

        A Settings is returned as is, so a function may call this on whatever it was given and a
        caller that holds the view pays nothing. A name ``source`` lacks gets a deep copy of its
        ``DEFAULTS`` value (a module from :func:`lamson.settings.load` lacks none). ``None`` (a
        caller with no settings at all) is every default, over an empty SimpleNamespace.

        Cheap (one attribute read per setting), but meant to be built once per process, where a
        stage starts, not per message: the values are read here, so a change to the module after
        this call is not seen (``load`` has applied the environment and the credentials before).
        """
        if isinstance(source, Settings):
            return source
        module = SimpleNamespace() if source is None else source
        values: dict[str, Any] = {}
        for name in cls.NAMES:
            value = getattr(module, name, _MISSING)
            values[name] = copy.deepcopy(DEFAULTS[name]) if value is _MISSING else value
        return cls(module=module, **values)

    def extra(self, name: str, default: Any = None) -> Any:
        """A name the application defines beyond ``DEFAULTS`` (``database_config``, a service
        ``config/boot.py`` assigned), read from the module now, or ``default``.

        A Lamson setting is read from its typed field instead (the value this view was built
        with), so that no name has two answers.
        """
        if name in DEFAULTS:
            return getattr(self, name)
        return getattr(self.module, name, default)


Settings.NAMES = tuple(f.name for f in dataclasses.fields(Settings) if f.name != "module")
