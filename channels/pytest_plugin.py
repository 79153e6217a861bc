"""alight's pytest plugin: channel and process tests without boilerplate.

Installed with alight (the ``pytest11`` entry point ``alight``), so pytest loads it by
itself; ``-p no:alight`` turns it off. It gives:

- ``@pytest.mark.alight`` on an ``async def`` test: the test runs as a process on a fresh
  `Node` (asyncio debug mode on, bounded by ``timeout`` seconds, default
  `DEFAULT_TIMEOUT`: ``@pytest.mark.alight(timeout=5)``), so `channels.testing`'s
  ``connect``, ``call``, ``receive`` and the rest work inside it, as in an ExUnit test
  that uses ``Phoenix.ChannelTest``;
- the ``alight_node`` fixture: that node, not yet started, to configure before the test
  runs (a marked test that asks for it runs on it);
- the ``alight_run`` fixture, for synchronous tests: ``alight_run(main, *args)`` runs
  ``main`` as a process on ``alight_node`` and returns its value.

::

    import pytest
    from alight.channels.testing import connect, start_endpoint

    @pytest.mark.alight
    async def test_ping(alight_node):
        await start_endpoint(app)
        client = await connect(app, UserSocket, {"user_id": "ann"})
        assert await client.join("room:lobby") == ("ok", {"joined": "room:lobby"})
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from ..actors import Node

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0
"""Seconds a test's process may run before it fails with `TimeoutError` and its stack."""

NODE_NAME = "test@127.0.0.1"


def runner(node: Node, timeout: float = DEFAULT_TIMEOUT) -> Callable[..., Any]:
    """``run(main, *args)``: run ``main`` as a process on ``node`` (started for it, in
    debug mode) and return its value; its exception propagates. ``main`` is bounded by
    ``timeout`` seconds."""

    def run(main: Callable[..., Awaitable[T]], *args: Any) -> T:
        @functools.wraps(main)  # the process's entry is still ``main`` (process_info)
        async def bounded(*args: Any) -> T:
            async with asyncio.timeout(timeout):
                return await main(*args)

        return node.run(bounded, *args, debug=True)

    return run


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "alight(timeout=60): run this async test as a process on a fresh alight Node (alight_node)"
    )


@pytest.fixture
def alight_node() -> Node:
    """A fresh node, not yet started; the test's process starts it."""
    return Node(NODE_NAME, watchdog_threshold=None)


@pytest.fixture
def alight_run(alight_node: Node) -> Callable[..., Any]:
    """``alight_run(main, *args)``: ``main`` as a process on ``alight_node``; see `runner`."""
    return runner(alight_node)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker("alight")
    if marker is None:
        return None
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test):
        raise pytest.UsageError(f"{pyfuncitem.nodeid}: @pytest.mark.alight is for `async def` tests")
    timeout = float(marker.kwargs.get("timeout", DEFAULT_TIMEOUT))
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    node = arguments.get("alight_node")
    if not isinstance(node, Node):
        node = Node(NODE_NAME, watchdog_threshold=None)

    async def main() -> None:
        await test(**arguments)

    runner(node, timeout)(main)
    return True
