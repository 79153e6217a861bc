"""Small helpers shared by the runtime's integration tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def equals(value: Any) -> Callable[[Any], bool]:
    """A receive predicate for one exact message.

    Not ``value.__eq__``: for a message of another type it returns NotImplemented,
    which is truthy, so it would match anything.
    """
    return lambda message: bool(message == value)
