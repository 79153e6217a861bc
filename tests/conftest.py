"""Fixtures every test may use: a fresh node per test, and ``run`` on it.

Tests never share a node (no global state) and run with asyncio debug mode on. What
tests share beyond fixtures is the `testkit` package (``tests/support``, on pytest's
path); processes the tests start find it through ``PYTHONPATH``, set here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from testkit import UNIT, Runner
from testkit.redis_server import RedisServer, server_binary

from alight.actors import Node
from alight.channels.pytest_plugin import NODE_NAME, runner

SUPPORT = Path(__file__).resolve().parent / "support"
RUN_TIMEOUT = 60 * UNIT
"""Seconds a test's ``run(main)`` may take (pytest-timeout's 120 s is the last resort)."""


def pytest_configure(config: pytest.Config) -> None:
    """Processes started by tests (apps, cluster nodes) import `testkit` too."""
    path = os.environ.get("PYTHONPATH")
    if str(SUPPORT) not in (path or "").split(os.pathsep):
        os.environ["PYTHONPATH"] = str(SUPPORT) if not path else f"{SUPPORT}{os.pathsep}{path}"


@pytest.fixture
def node() -> Node:
    """A fresh, not yet started node (``node.run(main)`` starts it)."""
    return Node(NODE_NAME, watchdog_threshold=None)


@pytest.fixture
def run(node: Node) -> Runner:
    """``run(main, *args)``: run ``main`` as a process on a fresh node, in debug mode,
    and return its value (its exception propagates to the test). ``main`` is bounded by
    `RUN_TIMEOUT`: a test that waits for something that never comes fails with
    `TimeoutError` and its stack, rather than hanging. The same as the ``alight_run``
    fixture that alight's pytest plugin gives its users, with the test unit's bound."""
    return runner(node, RUN_TIMEOUT)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real Redis server on 127.0.0.1 and a free port (`testkit.redis_server`),
    stopped in teardown. Skips where none is installed, except on CI
    (``ALIGHT_REQUIRE_REDIS``): ``./dev test`` installs Debian's redis-server."""
    binary = server_binary()
    if binary is None:
        if os.environ.get("ALIGHT_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server; ./dev test does it)")
    server = RedisServer(binary)
    try:
        server.start()
        yield server
    finally:
        server.close()
