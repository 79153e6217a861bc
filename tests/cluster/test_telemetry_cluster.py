"""Telemetry of cluster membership on real OS-process nodes: ``node_up`` / ``node_down``
events with the peer and the reason, and the metrics of a clustered endpoint.

The tester node runs in this process with a `Distribution` and an endpoint with
`EndpointMetrics`; the other node is `testkit.apps.node_main` in its own process group (the helpers
of `test_distribution`), killed in teardown. Waits are on telemetry events forwarded
to the test process as messages, each bounded by a multiple of `UNIT`.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from testkit import UNIT
from testkit.cluster import SECRET, WAIT, ChildNode

from alight.actors import Node, receive, self_pid
from alight.channels import Endpoint
from alight.channels.testing import start_endpoint
from alight.cluster.distribution import Distribution
from alight.metrics import EndpointMetrics
from alight.telemetry import NODE_DOWN, NODE_UP, Event

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane


@dataclass(frozen=True)
class Seen:
    event: Event
    measurements: dict[str, Any]
    metadata: dict[str, Any]


@pytest.fixture
def child() -> Iterator[Callable[[str], ChildNode]]:
    """``child(name)``: a node in its own process group, killed (resumed first) in teardown."""
    children: list[ChildNode] = []

    def starter(name: str) -> ChildNode:
        children.append(ChildNode(name, []))
        return children[-1]

    yield starter
    for node in children:
        if node.proc.poll() is None:
            node.signal(signal.SIGCONT)
        node.kill()


def run_tester(main: Callable[[Distribution, Endpoint], Awaitable[None]], seed: str, **options: Any) -> None:
    """Run ``main(dist, endpoint)`` on a node ``tester`` whose membership events go to the
    test process (attached before the distribution starts, so none is missed)."""
    node = Node("tester", watchdog_threshold=None)

    async def body() -> None:
        app = Endpoint(check_origin=False)
        EndpointMetrics(app)
        dist = Distribution(node, seeds=[seed], secret=SECRET, **options)

        async def test() -> None:
            me = self_pid()

            def forward(
                event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any], config: Any
            ) -> None:
                node.send(me, Seen(event, dict(measurements), dict(metadata)))

            node.telemetry.attach_many("test", [NODE_UP, NODE_DOWN], forward)
            await dist.start()
            await start_endpoint(app)
            await main(dist, app)

        try:
            await node.execute(test)
        finally:
            await dist.stop()

    node.run(body, debug=True)


async def seen(event: Event) -> Seen:
    message: Seen = await receive(lambda m: type(m) is Seen and m.event == event, WAIT)
    return message


async def scrape(app: Endpoint) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The endpoint's registry rendered and parsed, as a Prometheus server would see it."""
    metrics = app.extension(EndpointMetrics)
    assert metrics is not None
    await metrics.refresh()
    samples = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            assert sample.labels.pop("node") == "tester"
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_node_up_then_down_when_the_peer_is_killed(child: Callable[[str], ChildNode]) -> None:
    a = child("a")

    async def main(dist: Distribution, app: Endpoint) -> None:
        up = await seen(NODE_UP)
        assert up.metadata == {"node": "tester", "peer": "a", "reason": "connected"}
        assert up.measurements == {"nodes_up": 1}
        samples = await scrape(app)
        assert samples[("alight_cluster_node_ups_total", ())] == 1
        assert samples[("alight_cluster_nodes_up", ())] == 1
        assert ("alight_cluster_dropped_total", ()) in samples

        a.signal(signal.SIGKILL)
        down = await seen(NODE_DOWN)
        assert down.metadata == {"node": "tester", "peer": "a", "reason": "connection_lost"}
        assert down.measurements == {"nodes_up": 0}
        samples = await scrape(app)
        assert samples[("alight_cluster_node_downs_total", (("reason", "connection_lost"),))] == 1
        assert samples[("alight_cluster_nodes_up", ())] == 0

    run_tester(main, a.address)


def test_a_paused_peer_is_down_on_heartbeat_timeout_and_up_again_when_it_resumes(
    child: Callable[[str], ChildNode],
) -> None:
    a = child("a")

    async def main(dist: Distribution, app: Endpoint) -> None:
        await seen(NODE_UP)
        a.signal(signal.SIGSTOP)
        down = await seen(NODE_DOWN)
        assert down.metadata["peer"] == "a"
        assert down.metadata["reason"] == "heartbeat_timeout"
        a.signal(signal.SIGCONT)
        back = await seen(NODE_UP)
        assert back.metadata["peer"] == "a"
        samples = await scrape(app)
        assert samples[("alight_cluster_node_ups_total", ())] == 2
        assert samples[("alight_cluster_node_downs_total", (("reason", "heartbeat_timeout"),))] == 1

    run_tester(main, a.address, heartbeat_interval=0.1 * UNIT, down_after=0.5 * UNIT)
