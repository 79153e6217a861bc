"""Endpoint extensions: the README's example (`examples/clock.py`) and the protocol's
promises: phases in order, routes, ``extension()``, nothing added once running."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from testkit import UNIT, Runner
from testkit.processes import load_example

from alight.actors import ChildSpec, Node, Pid, receive, self_pid, spawn_link, which_children
from alight.channels import Broadcast, ChannelError, Endpoint, Extension, Phase
from alight.channels.testing import start_endpoint
from alight.transports.http import HttpRequest

WAIT = 5 * UNIT
Clock = load_example("clock").Clock


def test_the_clock_broadcasts_and_serves_its_route(run: Runner, node: Node) -> None:
    async def main() -> None:
        clock = Clock(interval=0.02)
        app = Endpoint(extensions=[clock])
        assert app.extension(Clock) is clock
        await start_endpoint(app)
        app.pubsub.subscribe(self_pid(), "clock")
        tick = await receive(Broadcast, timeout=WAIT)
        assert tick.topic == "clock"
        assert tick.event == "tick"
        assert tick.payload["ticks"] >= 1
        response = await app.handle_http(HttpRequest("GET", "/clock", "", (), b""))
        assert int(response.body) >= tick.payload["ticks"]
        with pytest.raises(ChannelError, match="is running"):
            app.extend(Clock())

    run(main)


class Recorder(Extension):
    """Records, in a shared list, the order its child starts in."""

    def __init__(self, name: str, phase: Phase, started: list[str]) -> None:
        self.name = name
        self.phase = phase
        self.started = started

    def child_specs(self, endpoint: Endpoint) -> Sequence[ChildSpec]:
        async def start() -> Pid:
            self.started.append(self.name)
            return spawn_link(receive)

        return [ChildSpec(id=self.name, start=start)]


def test_children_start_in_phase_order_around_the_endpoints_own(run: Runner, node: Node) -> None:
    async def main() -> None:
        started: list[str] = []
        app = Endpoint(
            extensions=[
                Recorder("services", Phase.SERVICES, started),
                Recorder("telemetry", Phase.TELEMETRY, started),
                Recorder("state", Phase.STATE, started),
                Recorder("sessions", Phase.SESSIONS, started),
            ]
        )
        tree = await start_endpoint(app)
        assert started == ["telemetry", "state", "sessions", "services"]
        ids = [child.id for child in await which_children(tree)]
        assert ids == ["pubsub", "telemetry", "state", "channels", "sessions", "services", "drainer"]

    run(main)
