"""``@spam_filter``: keep spam away from a state function, as in Lamson 1.x.

    @route("(list_name)@(host)")
    @spam_filter("run/spamdb", None, "run/spam", next_state=None)
    def POSTING(message, list_name=None, host=None): ...

Put it *under* ``@route``. Each message is classified (and gets an
``X-Spam-Classification`` header): spam is pushed into the Maildir queue
``spam_queue`` and the state function does not run, the decorated function
returns ``next_state`` instead (None: the sender stays in the state they are
in, because the router keeps the state when a state function returns None).
Ham and unsure messages run the state function as usual. A filter that has
not been trained with both spam and ham scores 0.5 (unsure), so nothing is
held back until someone trains it (1.x: no storage file, pass everything).

The wrapper keeps the wrapped function's name, module and route
annotations (:func:`functools.wraps`), which is all :mod:`lamson.router`
looks at: the state stored is still the function's own name.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from lamson.spam.classifier import SPAM
from lamson.spam.config import SpamConfig, load_config
from lamson.spam.filter import Filter

log = logging.getLogger(__name__)


def spam_filter(
    storage: str | Filter,
    config: SpamConfig | dict[str, Any] | str | os.PathLike[str] | None,
    spam_queue: str | os.PathLike[str],
    next_state: Callable[..., Any] | str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Divert spam into ``spam_queue`` (a Maildir) and return ``next_state`` instead of running the state.

    ``storage`` is the filter's storage name (or a :class:`Filter` to use as is).
    A ``config`` file that does not exist yet is not an error here, at import:
    1.x stored the paths and let mail through (with a warning) until the files
    existed, so an application imports before ``lamson spam`` made anything.
    The file is read on the first message after it appears; until then the
    filter runs with the default settings and says so once in the log.
    """
    pending = _pending_config(config) if not isinstance(storage, Filter) else None
    spam = storage if isinstance(storage, Filter) else Filter(storage, None if pending else config)

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(message: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal pending
            if pending is not None:
                pending = _load_pending(spam, pending)
            if spam.filter(message) == SPAM:
                from lamson.queue import Queue

                key = Queue(spam_queue).push(message)
                log.info("spam from %s to %s kept in %s as %s, not given to %s",
                         getattr(message, "From", "?"), getattr(message, "To", "?"), spam_queue, key,
                         func.__name__)
                return next_state
            return func(message, *args, **kwargs)

        wrapper.spam_filter = spam  # type: ignore[attr-defined]
        return wrapper

    return decorator


class _Pending:
    """A config file named at import that did not exist then; ``warned``: the log said so once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.warned = False


def _pending_config(config: Any) -> _Pending | None:
    """The config path to read later, if ``config`` names a file that does not exist (yet)."""
    if isinstance(config, str | os.PathLike) and not os.path.exists(config):
        return _Pending(os.fspath(config))
    return None


def _load_pending(spam: Filter, pending: _Pending) -> _Pending | None:
    """Read the config file into ``spam`` once it exists (None: done); until then warn once."""
    if os.path.exists(pending.path):
        spam.config = load_config(pending.path)  # a file that exists but is wrong is an error, as always
        return None
    if not pending.warned:
        pending.warned = True
        log.warning("spam filter config %s does not exist yet: filtering with the default settings "
                    "(an untrained filter lets all mail through)", pending.path)
    return pending
