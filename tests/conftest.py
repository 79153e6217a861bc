"""Shared test helpers: a fresh node per test, and one scalable unit of time.

Tests never share a node (no global state), run with asyncio debug mode on, and
express every timeout as a multiple of `UNIT` seconds, so a slow machine can scale
them all with ``ALIGHT_TEST_UNIT``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from alight.actors import Node

T = TypeVar("T")

UNIT = float(os.environ.get("ALIGHT_TEST_UNIT", "1.0"))
"""One unit of test time, in seconds."""

Runner = Callable[..., Any]


@pytest.fixture
def node() -> Node:
    """A fresh, not yet started node (``node.run(main)`` starts it)."""
    return Node("test@127.0.0.1", watchdog_threshold=None)


@pytest.fixture
def run(node: Node) -> Runner:
    """``run(main, *args)``: run ``main`` as a process on a fresh node, in debug mode,
    and return its value (its exception propagates to the test)."""

    def runner(main: Callable[..., Awaitable[T]], *args: Any) -> T:
        return node.run(main, *args, debug=True)

    return runner
