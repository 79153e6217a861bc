"""Fixtures of the cluster tests: nodes as OS processes, killed in teardown."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import pytest
from testkit.cluster import AppNode, ChildNode, app_pair


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
    env = {"ALIGHT_TEST_PUBSUB": request.getfixturevalue("redis_server").url} if request.param == "redis" else {}
    with app_pair(env) as pair:
        yield pair
