"""The Router: the guide's ``lamson.routing.Router``, process-wide.

It keeps the handler modules the application loaded, the routes their
decorated state functions declare (in registration order), and delivers each
message as Lamson 1.x does, once per recipient: walk the routes in order and,
in every route whose regex matches the recipient, take each ``@stateless``
function and the *first* stateful function whose module is in that state. At
most one stateful function runs per message and recipient, across all
modules and routes, and the state it returns is for the sender's next
message: a conversation advances one step per message, however many routes
match. Conversation state goes to ``STATE_STORE`` and every call runs under
the conversation locks of ``LOCKS`` (taken all at once before anything runs,
so contention raises :class:`ConversationBusy` and the message is simply
routed again later).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parseaddr
from types import ModuleType
from typing import Any

from lamson import context, parked
from lamson.connection import UNAVAILABLE, unavailable
from lamson.router.decorators import is_state_key_generator, spec_of
from lamson.router.disposition import Crashed, Disposition, NoRoute, Refused, Routed
from lamson.router.locks import ConversationBusy, LocalLocks, Locks
from lamson.router.patterns import RoutingError, compile_route
from lamson.router.state import START, MemoryStorage, StateStorage

#: Errors of the services a handler leans on (Redis for state, locks and the
#: outgoing queue), which say nothing about the message.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = UNAVAILABLE

#: Errors that fail the routing job (to be retried) instead of parking the message.
_NOT_THE_HANDLERS_FAULT: tuple[type[BaseException], ...] = (ConversationBusy, *INFRASTRUCTURE_ERRORS)

LOG = logging.getLogger("lamson.router")

ERROR = "ERROR"

StateFunction = Callable[..., Any]


def _is_smtp_error(exc: BaseException) -> bool:
    """True for :class:`lamson.server.SMTPError`, the handler's way to refuse a message.

    Looked up in ``sys.modules`` rather than imported: a handler can only
    raise it once ``lamson.server`` is imported, and the router's error
    handling must not depend on that module (and the relay it re-exports)
    importing cleanly.
    """
    server = sys.modules.get("lamson.server")
    smtp_error = getattr(server, "SMTPError", None)
    return isinstance(smtp_error, type) and isinstance(exc, smtp_error)


def _flag(func: StateFunction, name: str) -> bool:
    """A decorator flag of a state function; False for one registered by hand without decorators."""
    return bool(getattr(spec_of(func), name, False))


def _default_state_key(module_name: str, message: Any) -> str:
    """The state key of a module without a ``@state_key_generator``: its name."""
    return module_name


def bare_address(address: Any) -> str:
    """The bare, lowercased form of an address (``"Joe <J@X.com>"`` → ``"j@x.com"``)."""
    if address is None:
        return ""
    text = str(address).strip()
    if "<" in text:
        text = parseaddr(text)[1] or text
    return text.strip().lower()


def function_name(func: StateFunction) -> str:
    return f"{func.__module__}.{func.__name__}"


def _named(message: Any) -> str:
    """``"ID: "`` for the log lines about a message a router worker handles (its receiver id), else "".

    The id is what ``grep ID logs/*`` follows from the receiver to the relay
    (docs/operations.md, "Logs"); written into the message itself, it is there
    whatever formatter an application's ``config/boot.py`` installs.
    """
    envelope = getattr(message, "envelope", None)
    ident = getattr(envelope, "id", None)
    if not ident:
        handling = context.handled()
        ident = handling.id if handling is not None else None
    return f"{ident}: " if ident else ""


@dataclass
class _Loaded:
    """A handler module the router loaded, and the file state it was loaded from."""

    name: str
    file: str | None
    stamp: tuple[int, int] | None


def _file_stamp(path: str | None) -> tuple[int, int] | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class RouterClass:
    """Routes, conversation state and locks for one process.

    The names of Lamson 1.x's ``RoutingBase`` are kept: ``defaults``,
    ``load``, ``reload``, ``register_route``, ``deliver``, ``match``,
    ``state_key``, ``get_state``, ``set_state``, ``in_state``, ``in_error``,
    ``call_safely``, ``clear_states``, ``clear_routes``, ``REGISTERED``,
    ``ORDER``, ``DEFAULT_CAPTURES``, ``HANDLERS``, ``STATE_STORE``,
    ``UNDELIVERABLE_QUEUE``, ``RELOAD``, ``LOG_EXCEPTIONS``.
    """

    def __init__(self) -> None:
        self.STATE_STORE: StateStorage = MemoryStorage()
        self.LOCKS: Locks = LocalLocks()
        #: A lamson.queue.Queue (or anything with push) for messages nothing handled.
        self.UNDELIVERABLE_QUEUE: Any = None
        #: Reload handler modules whose files changed, before each message (development).
        self.RELOAD = False
        #: True: a failing state function is logged and parked; False: the exception propagates.
        self.LOG_EXCEPTIONS = True
        self._defaults: dict[str, str] = {}
        self._modules: dict[str, _Loaded] = {}
        self._functions: list[StateFunction] = []
        #: Every (function, pattern, captures) in registration order: what the table is built from.
        self._routes: list[tuple[StateFunction, str, dict[str, str]]] = []
        self._keygens: dict[str, StateFunction] = {}
        self._table: list[tuple[re.Pattern[str], list[StateFunction]]] | None = None

    # -- configuration -------------------------------------------------

    def defaults(self, **captures: str) -> None:
        """Set default capture regexes (``host="test\\\\.com"``) used by every route."""
        self._defaults.update(captures)
        self._table = None

    def load(self, handlers: list[str] | tuple[str, ...]) -> None:
        """Import handler modules (by dotted name) and register their routes, in order.

        A route whose capture has no regex is a RoutingError here, at load
        time, not on the first message.
        """
        if isinstance(handlers, str):
            handlers = [handlers]
        for name in handlers:
            module = importlib.import_module(name)
            if name not in self._modules:
                self._modules[name] = _Loaded(name, getattr(module, "__file__", None),
                                              _file_stamp(getattr(module, "__file__", None)))
                self._register_module(module)
        self._build()

    def _register_module(self, module: ModuleType) -> None:
        name = module.__name__
        for value in list(vars(module).values()):
            if not callable(value) or getattr(value, "__module__", None) != name:
                continue
            if is_state_key_generator(value):
                self._keygens[name] = value
            spec = spec_of(value)
            if spec is None:
                continue
            if spec.pattern is None:
                LOG.warning("%s is marked stateless/nolocking but has no @route: ignored", function_name(value))
                continue
            if value in self._functions:
                continue
            self._functions.append(value)
            # Stacked @route lines: the bottom one registers first, as in Lamson 1.x.
            for pattern, captures in spec.routes or [(spec.pattern, spec.captures)]:
                self._routes.append((value, pattern, captures))

    def register_route(self, format: str, func: StateFunction, **captures: str) -> None:  # noqa: A002
        """Route ``format`` to ``func`` by hand (what ``@route`` does at load time).

        A regex already in the table gets ``func`` appended and keeps its
        place in ORDER; a new one goes last. ``captures`` fill ``(name)``
        placeholders before the router defaults do. The table is rebuilt at
        once, so a bad pattern fails here rather than on the next message.
        """
        if func not in self._functions:
            self._functions.append(func)
        self._routes.append((func, format, dict(captures)))
        self._build()

    def reload(self) -> None:
        """Reload every loaded handler module from its file and rebuild the table."""
        self._reload([loaded.name for loaded in self._modules.values()])

    def reload_changed(self) -> list[str]:
        """Reload the handler modules whose files changed since loaded; return their names."""
        changed = [m.name for m in self._modules.values() if m.file and _file_stamp(m.file) != m.stamp]
        if changed:
            self._reload(changed)
        return changed

    def _reload(self, names: list[str]) -> None:
        for name in names:
            loaded = self._modules[name]
            module = sys.modules.get(name)
            try:
                if loaded.file:
                    # The .pyc records the source mtime in whole seconds: an edit within
                    # the same second and of the same size would be missed without this.
                    try:
                        os.unlink(importlib.util.cache_from_source(loaded.file))
                    except (OSError, NotImplementedError, ValueError):
                        pass
                importlib.invalidate_caches()
                module = importlib.reload(module) if module is not None else importlib.import_module(name)
            except Exception:
                LOG.exception("reloading handler module %s failed; keeping the previous version", name)
                loaded.stamp = _file_stamp(loaded.file)
                continue
            loaded.file = getattr(module, "__file__", None)
            loaded.stamp = _file_stamp(loaded.file)
            LOG.info("reloaded handler module %s", name)
        # Rebuild everything in load order so the routing ORDER stays stable.
        self._functions = []
        self._routes = []
        self._keygens = {}
        for name in self._modules:
            module = sys.modules.get(name)
            if module is not None:
                self._register_module(module)
        self._build()

    def clear_routes(self) -> None:
        """Forget every loaded module and route (the defaults stay)."""
        self._modules.clear()
        self._functions.clear()
        self._routes.clear()
        self._keygens.clear()
        self._table = None

    def clear_states(self) -> None:
        """Forget every conversation: everybody is back in START."""
        self.STATE_STORE.clear()

    # -- the route table -----------------------------------------------

    def _build(self) -> list[tuple[re.Pattern[str], list[StateFunction]]]:
        table: dict[str, tuple[re.Pattern[str], list[StateFunction]]] = {}
        for func, pattern, captures in self._routes:
            try:
                regex = compile_route(pattern, captures, self._defaults)
            except RoutingError as exc:
                raise RoutingError(f"{function_name(func)}: {exc}") from None
            entry = table.setdefault(regex.pattern, (regex, []))
            if func not in entry[1]:
                entry[1].append(func)
        self._table = list(table.values())
        return self._table

    @property
    def table(self) -> list[tuple[re.Pattern[str], list[StateFunction]]]:
        """``[(compiled regex, [state functions])]`` in routing order."""
        return self._table if self._table is not None else self._build()

    @property
    def ORDER(self) -> list[str]:  # noqa: N802 - the guide's name
        """The routing regexes in the order they are tried."""
        return [regex.pattern for regex, _ in self.table]

    @property
    def TABLE(self) -> dict[str, list[StateFunction]]:  # noqa: N802 - the guide's name
        """Each routing regex and the state functions it maps to."""
        return {regex.pattern: list(funcs) for regex, funcs in self.table}

    @property
    def REGISTERED(self) -> dict[str, tuple[re.Pattern[str], list[StateFunction]]]:  # noqa: N802 - 1.x name
        """Lamson 1.x's view of the table: ``{regex: (compiled regex, [functions])}``, a copy."""
        return {regex.pattern: (regex, list(funcs)) for regex, funcs in self.table}

    @property
    def DEFAULT_CAPTURES(self) -> dict[str, str]:  # noqa: N802 - 1.x name
        """The default capture regexes (a copy: change them with :meth:`defaults`)."""
        return dict(self._defaults)

    @DEFAULT_CAPTURES.setter
    def DEFAULT_CAPTURES(self, captures: dict[str, str]) -> None:  # noqa: N802 - 1.x name
        self._defaults = dict(captures)
        self._table = None

    @property
    def HANDLERS(self) -> dict[str, StateFunction]:  # noqa: N802 - 1.x name
        """Each loaded handler module and the function that makes its state keys."""
        return {name: self._keygens.get(name, _default_state_key) for name in self._modules}

    @property
    def modules(self) -> list[str]:
        """The handler modules loaded, in load order."""
        return list(self._modules)

    def match(self, address: Any) -> Iterator[tuple[list[StateFunction], dict[str, str]]]:
        """Yield ``(functions, captures)`` for every route matching ``address``, in order."""
        text = bare_address(address)
        for regex, funcs in self.table:
            found = regex.match(text)
            if found:
                yield list(funcs), {k: v for k, v in found.groupdict().items() if v is not None}

    # -- conversation state --------------------------------------------

    def state_key(self, module_name: str, message: Any) -> str:
        """The key a module's conversations are stored under (module name by default)."""
        keygen = self._keygens.get(module_name)
        return str(keygen(module_name, message)) if keygen else module_name

    def get_state(self, module_name: str, message: Any) -> str:
        """The sender's state name in that module's conversation (``"START"`` if none)."""
        return self.STATE_STORE.get(self.state_key(module_name, message), sender_of(message))

    def set_state(self, module_name: str, message: Any, state: str | StateFunction) -> None:
        """Set the sender's state in a module's conversation (a name or a state function)."""
        name = state if isinstance(state, str) else state.__name__
        self.STATE_STORE.set(self.state_key(module_name, message), sender_of(message), name)

    def state_names(self, module_name: str) -> set[str]:
        """The names of the routed state functions of one module."""
        return {f.__name__ for f in self._functions if f.__module__ == module_name}

    def current_state(self, module_name: str, message: Any) -> str:
        """The sender's state in a module, a stale name counting as START.

        A stored state that names no routed function of the module (renamed
        or removed since) counts as START, so no sender is ever stuck in it.
        """
        state = self.get_state(module_name, message)
        if state != START and state not in self.state_names(module_name):
            LOG.warning("conversation %s/%s is in state %r, which %s no longer routes: treated as START",
                        module_name, bare_address(message.From), state, module_name)
            return START
        return state

    def in_state(self, func: StateFunction, message: Any) -> bool:
        """True when the sender's state in ``func``'s module is ``func``'s name."""
        return self.current_state(func.__module__, message) == func.__name__

    def in_error(self, func: StateFunction, message: Any) -> bool:
        """True when the sender's conversation with ``func``'s module is in ``ERROR``.

        A state function that failed puts its module in ERROR when the module
        routes an ERROR state (see :meth:`call_safely`).
        """
        return self.get_state(func.__module__, message) == ERROR

    # -- delivery --------------------------------------------------------

    def lock_name(self, func: StateFunction, message: Any) -> str:
        """The conversation lock a call of ``func`` for this message needs."""
        return f"{self.state_key(func.__module__, message)}\x1f{sender_of(message)}"

    def deliver(self, message: Any) -> int:
        """Route one message (Lamson 1.x's entry point); return how many state functions ran.

        A message whose ``To`` is a list is routed once per recipient, in
        order. Raises ConversationBusy (before running anything for that
        recipient) when a conversation lock cannot be taken within the lock
        wait.

        What routing came to (:meth:`dispose`) is acted on here as 1.x did:
        a state function that failed, or a refusal (a handler raising
        :class:`lamson.server.SMTPError`, after which nothing more runs for
        the message), parks it in ``UNDELIVERABLE_QUEUE`` with the reason; a
        message nothing took goes there too (or is logged when there is no
        queue). Without ``LOG_EXCEPTIONS`` the errors propagate instead, as
        in Lamson 1.x, so tests can assert on them. A router worker's routing
        job calls :meth:`dispose` itself and decides in one place.
        """
        called = 0
        for single in self.recipients(message):
            outcome = self.dispose(single)
            if isinstance(outcome, Routed | Crashed | Refused):
                called += outcome.ran
            if isinstance(outcome, Crashed | Refused):
                self.park(single, outcome.reason)
            elif isinstance(outcome, NoRoute):
                self.undeliverable(single, outcome.reason)
            if isinstance(outcome, Refused):
                break
        return called

    @staticmethod
    def recipients(message: Any) -> list[Any]:
        """The message once per recipient (``To`` a list: a shallow copy for each)."""
        if not isinstance(message.To, list | tuple):
            return [message]
        singles = []
        for rcpt in message.To:
            single = copy.copy(message)
            single.To = rcpt
            singles.append(single)
        return singles

    def dispose(self, message: Any) -> Disposition:
        """Route a message for its one recipient (``message.To``) and say what came of it; park nothing.

        Raises ConversationBusy and infrastructure errors (the message is routed
        again later, nothing was charged to it), and, without ``LOG_EXCEPTIONS``,
        what the handlers raised.
        """
        if self.RELOAD:
            self.reload_changed()
        return self._deliver_one(message)

    def select(self, message: Any) -> list[tuple[StateFunction, dict[str, str]]]:
        """What routing one recipient's message runs: ``[(function, captures)]`` in call order.

        Walks every matching route in ORDER and, within a route, its
        functions in registration order: each ``@stateless`` function is
        taken, and the first stateful function whose module is in that
        function's state, once for the whole walk (Lamson 1.x's rule). The
        states are read before anything runs, so a state set by this
        message never selects another function for this same message.
        """
        chosen: list[tuple[StateFunction, dict[str, str]]] = []
        stateful_found = False
        states: dict[str, str] = {}  # read once per module
        for funcs, captures in self.match(message.To):
            for func in funcs:
                if _flag(func, "stateless"):
                    chosen.append((func, captures))
                    continue
                if stateful_found:
                    continue
                module_name = func.__module__
                if module_name not in states:
                    states[module_name] = self.current_state(module_name, message)
                if states[module_name] == func.__name__:
                    chosen.append((func, captures))
                    stateful_found = True
        return chosen

    def _deliver_one(self, message: Any) -> Disposition:
        matched = [f for funcs, _ in self.match(message.To) for f in funcs]
        locks = sorted({self.lock_name(f, message) for f in matched
                        if not _flag(f, "nolocking")})
        ran = 0
        crashes: list[str] = []
        with self.LOCKS.hold(locks):
            # Chosen under the locks: the states read are the ones no other process is changing.
            for func, captures in self.select(message):
                ran += 1
                try:
                    crash = self._call(func, message, captures)
                except Exception as exc:
                    if not _is_smtp_error(exc):
                        raise
                    LOG.warning("%smessage to %r from %r refused by a handler: %s", _named(message),
                                message.To, message.From, exc)
                    if not self.LOG_EXCEPTIONS:
                        raise
                    return Refused(f"refused by a handler: {exc}", ran)
                if crash is not None:
                    crashes.append(crash)
        if crashes:
            return Crashed("; ".join(crashes), ran)
        return Routed(ran) if ran else NoRoute()

    def call_safely(self, func: StateFunction, message: Any, captures: dict[str, str]) -> None:
        """Run one state function and apply its transition; park the message if it fails (1.x's name)."""
        crash = self._call(func, message, captures)
        if crash is not None:
            self.park(message, crash)

    def _call(self, func: StateFunction, message: Any, captures: dict[str, str]) -> str | None:
        """Run one state function and apply its transition; why it failed, or None.

        A failure puts the module in its ERROR state (when it routes one) and
        logs the traceback, or re-raises when ``LOG_EXCEPTIONS`` is false.
        ``SMTPError`` (a deliberate refusal, not a bug) and infrastructure
        errors always propagate untouched.
        """
        stateless = _flag(func, "stateless")
        module_name = func.__module__
        try:
            next_state = func(message, **captures)
            if stateless or next_state is None:
                return None
            if isinstance(next_state, str):
                self.set_state(module_name, message, next_state)
            elif callable(next_state) and hasattr(next_state, "__name__"):
                self.set_state(next_state.__module__, message, next_state)
            else:
                raise TypeError(f"{function_name(func)} returned {next_state!r}: "
                                "return the next state function (or None to stay)")
        except _NOT_THE_HANDLERS_FAULT:
            # Not the handler's fault: the job fails and is retried with the message
            # still in the spool, instead of parking it (and its lost reply) as a crash.
            raise
        except Exception as exc:
            if _is_smtp_error(exc):
                raise  # dispose() decides: a refusal (LOG_EXCEPTIONS) or propagate
            if unavailable(exc):
                raise  # Redis refusing writes (MISCONF, NOREPLICAS, ...): not the handler's fault either
            if not stateless and ERROR in self.state_names(module_name):
                self.set_state(module_name, message, ERROR)
            # The traceback as exc_info: a block of lines under this one (lamson.logs), not message text.
            LOG.error("%s%s failed on message from %r to %r", _named(message), function_name(func), message.From,
                      message.To, exc_info=True)
            if not self.LOG_EXCEPTIONS:
                raise
            return f"{function_name(func)} raised {type(exc).__name__}: {exc}"
        return None

    def undeliverable(self, message: Any, reason: str) -> None:
        """Keep a message no state function took (or log it when there is no queue)."""
        if self.UNDELIVERABLE_QUEUE is not None:
            LOG.debug("%smessage to %r from %r undeliverable (%s): queued", _named(message), message.To,
                      message.From, reason)
            self.park(message, reason)
        else:
            LOG.info("%smessage to %r from %r didn't match any handlers", _named(message), message.To,
                     message.From)

    def park(self, message: Any, reason: str) -> str | None:
        """Put a message in UNDELIVERABLE_QUEUE as a parked record (lamson.parked); its key there.

        The record holds the envelope the message was spooled with (``message.envelope`` in a
        router worker: its group, such as a deferred ``posts``, its id and attempts), narrowed to
        the recipient being routed, so ``lamson queue -requeue`` sends it back to that group for
        that recipient only. Without one (1.x code, unit tests) it is made from From/To, in the
        "incoming" group. UNDELIVERABLE_QUEUE is 1.x's attribute: anything with ``push`` takes the
        record's bytes (a worker's is a lamson.queue.Queue on ``undeliverable_dir``).

        A router worker's routing job calls it for a disposition that is not Routed
        (``RoutingJob._act``) and reports the message parked instead of routed.
        """
        if self.UNDELIVERABLE_QUEUE is None:
            return None
        try:
            key: str | None = self.UNDELIVERABLE_QUEUE.push(parked.record(parked.envelope_of(message), reason,
                                                                          _message_bytes(message)))
        except Exception:
            LOG.exception("%scould not queue undeliverable message to %r from %r", _named(message), message.To,
                          message.From)
            raise
        LOG.info("%smessage to %r from %r put in %r as %s", _named(message), message.To, message.From,
                 self.UNDELIVERABLE_QUEUE, key)
        return key

    def __repr__(self) -> str:
        return f"<Router modules={self.modules} store={self.STATE_STORE!r} locks={self.LOCKS!r}>"


def sender_of(message: Any) -> str:
    """The bare, lowercased sender a conversation is keyed by.

    The envelope sender (``message.From``), else a ``route_from`` the
    message may carry (Lamson 1.x's name), else the empty string (the null
    sender ``<>`` of bounces).
    """
    sender = bare_address(getattr(message, "From", None))
    if not sender:
        sender = bare_address(getattr(message, "route_from", None))
    return sender


def _message_bytes(message: Any) -> bytes:
    """The bytes of a message being routed, as it was received (``Data``), to park it."""
    data = getattr(message, "Data", None)
    if data is None:
        from lamson.queue import as_bytes

        return as_bytes(message)
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)


#: Lamson 1.x's name for the class.
RoutingBase = RouterClass

#: The process-wide router, as in the guide.
Router = RouterClass()
