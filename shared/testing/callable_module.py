"""Modules that can also be called, for the two names Lamson 1.x gave to functions.

Lamson 1.x tests call ``lamson.testing.relay(port=8823)`` and
``lamson.testing.spelling(file_name, contents)``; in this project
``lamson.testing.relay`` and ``lamson.testing.spelling`` are modules that
existing code imports from (``from lamson.testing.spelling import
assert_spelling``). Rebinding the package attribute to a function would break
``import lamson.testing.spelling`` users; renaming the modules would break the
others. A module whose class has ``__call__`` serves both: the Python data model
allows assigning a :class:`types.ModuleType` subclass to a module's
``__class__``.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


class CallableModule(types.ModuleType):
    """A module that forwards calls to the function it names in ``__call_target__``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__dict__["__call_target__"](*args, **kwargs)


def make_callable(module_name: str, target: Callable[..., Any]) -> None:
    """Let ``sys.modules[module_name](...)`` call ``target``."""
    module = sys.modules[module_name]
    module.__dict__["__call_target__"] = target
    module.__class__ = CallableModule
