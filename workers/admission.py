"""Admission: the checks a claimed message passes before any handler sees it.

Each check is a small callable ``check(message: Admitting) -> str | None``:
the reason to park the message, or None to let it through. The routing job
runs them in order and parks the message with the first reason it gets
(lamson.parked: ``lamson queue -reasons`` shows it, ``-requeue`` sends it
back once the cause is fixed). The built-in ones, in :data:`CHECKS`:

* attempts: parked after ``max_attempts`` failed attempts (workers that died
  holding it, errors outside the handlers);
* size: over a Maildir queue's ``size_limit``;
* recipient: no envelope recipient (a queued message with no To header);
* quarantine: :func:`lamson.mail.screen` (headers no handler should parse);
* loops: it carries our loop trace more than ``max_loop_traces`` times;
* DMARC: with ``dmarc_reject_park``, a DMARC fail whose domain says p=reject.

An application adds its own with the ``admission_checks`` setting: dotted
names of such callables, run after the built-in ones (docs/mail.md,
"Admission checks"). A check must be quick and should not raise: what it
raises costs the message an attempt, like any error outside the handlers
(retried after ``route_retries``, parked at ``max_attempts``).
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lamson import loops
from lamson.groups import Group
from lamson.spool import Spooled
from lamson.typed_settings import Settings

log = logging.getLogger("lamson.workers")


@dataclass
class Admitting:
    """A message being admitted, with what the checks need to know about it (computed once)."""

    spooled: Spooled
    group: Group
    settings: Settings
    #: This installation's loop-trace name (lamson.loops).
    trace: str
    #: How many times the message carries our loop trace.
    traces: int = 0
    #: Computes its SPF/DKIM/DMARC results (DNS lookups): run only when a check asks for :attr:`auth`.
    authenticate: Callable[[], Any] = lambda: None
    #: Why it is not admitted (the first check's reason), once the checks ran; None: admitted.
    refused: str | None = None
    #: Whatever an application's check wants to hand the next ones.
    notes: dict[str, Any] = field(default_factory=dict)
    _auth: list[Any] = field(default_factory=list, repr=False)

    @property
    def auth(self) -> Any:
        """Its SPF/DKIM/DMARC results (lamson.authres.AuthResults); None when the group does not authenticate
        senders (or ``auth_results`` is off). Computed on first use, so mail parked by a cheaper check
        costs no DNS lookup."""
        if not self._auth:
            self._auth.append(self.authenticate())
        return self._auth[0]

    @property
    def size(self) -> int:
        return len(self.spooled.data)


Check = Callable[[Admitting], "str | None"]


def attempts(m: Admitting) -> str | None:
    limit = m.settings.max_attempts
    if m.spooled.envelope.attempts >= limit:
        return (f"{m.spooled.envelope.attempts} attempts failed (workers died or errors outside the handlers); "
                f"parked after max_attempts={limit}")
    return None


def size(m: Admitting) -> str | None:
    limit = m.group.size_limit
    if limit and m.size > limit:
        return f"{m.size} bytes, over the queue's size_limit of {limit}"
    return None


def recipient(m: Admitting) -> str | None:
    return None if m.spooled.envelope.rcpt_tos else "no recipient: a queued message needs a To header"


def quarantine(m: Admitting) -> str | None:
    from lamson.mail import screen

    reason = screen(m.spooled.data)
    return f"quarantined: {reason}" if reason else None


def loop(m: Admitting) -> str | None:
    limit = m.settings.max_loop_traces
    if m.traces > limit:
        return (f"mail loop: it carries {loops.TRACE_HEADER}: {m.trace} {m.traces} times "
                f"(max_loop_traces={limit})")
    return None


def dmarc(m: Admitting) -> str | None:
    auth = m.auth
    if m.settings.dmarc_reject_park and auth is not None and auth.dmarc == "fail" and auth.dmarc_policy == "reject":
        return (f"DMARC fail for {auth.from_domain}, whose policy is p=reject "
                f"(spf={auth.spf}, dkim={auth.dkim}; dmarc_reject_park is on)")
    return None


#: The built-in checks, in the order they run: the cheap ones first, sender authentication's last.
CHECKS: tuple[Check, ...] = (attempts, size, recipient, quarantine, loop, dmarc)


def checks(settings: Settings) -> tuple[Check, ...]:
    """The built-in checks, then the application's (``admission_checks``: dotted names).

    A router worker calls it once its application loaded, so a name that does not
    import is reported like any load failure (and retried), not on every message;
    the names are resolved once per process.
    """
    return (*CHECKS, *_resolve(tuple(str(name) for name in settings.admission_checks or ())))


@functools.cache
def _resolve(names: tuple[str, ...]) -> tuple[Check, ...]:
    found: list[Check] = []
    for name in names:
        module, _, attr = str(name).rpartition(".")
        try:
            check = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ValueError(f"admission_checks: cannot import {name!r}: {exc}") from exc
        if not callable(check):
            raise ValueError(f"admission_checks: {name!r} is not callable")
        found.append(check)
    return tuple(found)


def first_reason(message: Admitting, run: Sequence[Check]) -> str | None:
    """The first check's reason to park the message, or None: admitted."""
    for check in run:
        reason = check(message)
        if reason:
            return str(reason)
    return None
