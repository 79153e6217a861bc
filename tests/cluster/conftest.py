"""Fixtures of the cluster tests: nodes as OS processes, killed in teardown."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import pytest
from testkit.cluster import ChildNode


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
