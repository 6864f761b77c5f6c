"""Every rq queue name and Redis key, derived from one namespace.

Two applications on one Redis must never see each other's mail, jobs,
conversation state or workers. So nothing in Lamson spells a queue name or a
Redis key as a literal: it asks a :class:`Names` built from the
application's ``namespace`` setting (``LAMSON_NAMESPACE`` in the
environment; default ``"lamson"``, which keeps the familiar
``lamson-incoming`` / ``lamson-outgoing`` queue names for ``rq info``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_NAMESPACE = "lamson"

#: Lower-case letters, digits, ``_`` and ``-``; it becomes part of rq queue names and Redis keys.
_VALID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class BadNamespace(ValueError):
    """A namespace that cannot be part of a queue name or a Redis key."""


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _VALID.match(namespace):
        raise BadNamespace(
            f"namespace must be 1-32 characters of a-z, 0-9, '_' or '-' (starting with a letter or digit), "
            f"not {namespace!r}"
        )
    return namespace


@dataclass(frozen=True)
class Names:
    """The names one application uses in Redis and rq."""

    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        check_namespace(self.namespace)

    def key(self, *parts: str) -> str:
        """A Redis key: ``NAMESPACE:part:part``."""
        return ":".join((self.namespace, *parts))

    def queue(self, name: str) -> str:
        """The rq queue for a worker group: ``incoming`` → ``NAMESPACE-incoming``.

        A name already carrying this namespace's prefix is returned as is, so
        ``lamson worker -queue posts`` and ``-queue lamson-posts`` mean the same.
        """
        prefix = self.namespace + "-"
        return name if name.startswith(prefix) else prefix + name

    def short(self, queue: str) -> str:
        """The worker group name of an rq queue (the inverse of :meth:`queue`)."""
        prefix = self.namespace + "-"
        return queue[len(prefix):] if queue.startswith(prefix) else queue

    @property
    def incoming(self) -> str:
        return self.queue("incoming")

    @property
    def outgoing(self) -> str:
        return self.queue("outgoing")


def names_for(settings: Any) -> Names:
    """The Names of the application whose settings these are (a module, a SimpleNamespace, a Settings)."""
    from lamson.typed_settings import Settings  # imported here: lamson.settings imports this module

    return Names(Settings.of(settings).namespace)
