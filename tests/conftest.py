"""Fixtures every test may use: a fresh node per test, and ``run`` on it.

Tests never share a node (no global state) and run with asyncio debug mode on. What
tests share beyond fixtures is the `testkit` package (``tests/support``, on pytest's
path); processes the tests start find it through ``PYTHONPATH``, set here.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from testkit import Runner

from alight.actors import Node

T = TypeVar("T")

SUPPORT = Path(__file__).resolve().parent / "support"


def pytest_configure(config: pytest.Config) -> None:
    """Processes started by tests (apps, cluster nodes) import `testkit` too."""
    path = os.environ.get("PYTHONPATH")
    if str(SUPPORT) not in (path or "").split(os.pathsep):
        os.environ["PYTHONPATH"] = str(SUPPORT) if not path else f"{SUPPORT}{os.pathsep}{path}"


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
