"""Fixtures of the cluster tests: nodes as OS processes, killed in teardown."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import pytest
from testkit.cluster import AppNode, ChildNode, wait_for


@pytest.fixture
def start() -> Iterator[Callable[..., ChildNode]]:
    children: list[ChildNode] = []

    def starter(name: str, *seeds: str) -> ChildNode:
        child = ChildNode(name, list(seeds))
        children.append(child)
        return child

    yield starter
    for child in children:
        if child.proc.poll() is None:
            child.signal(signal.SIGCONT)  # a stopped process group must resume to die cleanly
        child.kill()


@pytest.fixture(params=["mesh", "redis"])
def app_cluster(request: pytest.FixtureRequest) -> Iterator[tuple[AppNode, AppNode]]:
    """Two `AppNode` processes ``a`` and ``b``, connected: by the mesh (b joins through
    a) or, the second time, through a Redis server started for the test and nothing else."""
    env = {}
    if request.param == "redis":
        env["ALIGHT_TEST_PUBSUB"] = request.getfixturevalue("redis_server").url
    nodes: list[AppNode] = []
    try:
        a = AppNode("a", [], env=env)
        nodes.append(a)
        b = AppNode("b", [a.address] if not env else [], env=env)
        nodes.append(b)
        wait_for("a and b connected", lambda: a.nodes() == ["b"] and b.nodes() == ["a"])
        yield a, b
    finally:
        for node in nodes:
            node.kill()
