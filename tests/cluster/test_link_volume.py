"""Cluster links under volume: a burst far beyond one frame arrives whole and in order.

A flood of small messages fills the sender's DEALER and the receiver's ROUTER; the
link must push back (``EAGAIN``, retried) rather than drop, and the receiver, busy
draining its backlog, must keep heart-beating so that neither node declares the other
down (which would discard the link's queue: the loss seen at 500,000 messages).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from testkit import UNIT
from testkit.cluster import ChildNode, run_tester, wait_nodes

from alight.actors import Pid, receive, self_pid, send
from alight.cluster.distribution import Distribution, spawn_on

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

COUNT = 200_000
BURST = 1000
"""Messages sent between two yields to the loop (the link flushes once per loop turn)."""


def test_200000_messages_arrive_in_order_without_drops(start: Callable[..., ChildNode]) -> None:
    b = start("b")

    async def check_sequence(reply_to: Pid, count: int) -> None:
        """On node b: receive ``0 .. count-1``; report how many came and how many in order."""
        from alight.cluster.distribution import distribution

        in_order = 0
        for received in range(count):
            value = await receive()
            in_order += value == received
        links = distribution().stats
        send(reply_to, ("checked", count, in_order, links.links.dropped, links.nodedowns))

    async def main(dist: Distribution) -> Any:
        await wait_nodes(dist, {"b"})
        checker = await spawn_on("b", check_sequence, self_pid(), COUNT)
        for first in range(0, COUNT, BURST):
            for i in range(first, first + BURST):
                send(checker, i)
            await asyncio.sleep(0)
        reply = await receive(lambda m: isinstance(m, tuple) and m[0] == "checked", timeout=15 * UNIT)
        return reply, dist.stats

    reply, stats = run_tester(main, b.address)
    _, count, in_order, dropped_on_b, nodedowns_on_b = reply
    assert (count, in_order) == (COUNT, COUNT)
    assert (dropped_on_b, nodedowns_on_b) == (0, 0)
    assert (stats.links.dropped, stats.nodedowns) == (0, 0)
    assert stats.links.messages_sent >= COUNT
