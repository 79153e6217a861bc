"""An endpoint extension of your own (README, "Architecture"): a clock that broadcasts
a tick on the topic ``"clock"`` every ``interval`` seconds and serves ``GET /clock``.

    alight run examples.clock:app          # then: curl http://127.0.0.1:4000/clock

It attaches the way presence, long-poll, metrics, the dashboard and the cluster do
(`alight.channels.extension`): a phase, and the hooks it needs.
"""

from __future__ import annotations

from collections.abc import Sequence

from alight.actors import ChildSpec, Pid, receive, spawn_link
from alight.channels import Endpoint, Extension, Phase
from alight.transports.http import HttpRequest, HttpResponse


class Clock(Extension):
    """Broadcasts ``tick`` ``{"ticks": n}`` on ``"clock"``; ``GET /clock`` answers ``n``."""

    phase = Phase.SERVICES  # after the channels: its broadcasts have somewhere to go

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.ticks = 0

    def installed(self, endpoint: Endpoint) -> None:
        endpoint.route("GET", "/clock", self.page)

    def child_specs(self, endpoint: Endpoint) -> Sequence[ChildSpec]:
        async def start() -> Pid:
            return spawn_link(self.run, endpoint)

        return [ChildSpec(id="clock", start=start)]

    async def run(self, endpoint: Endpoint) -> None:
        """The clock's process, supervised in the endpoint's tree."""
        while True:
            await receive(lambda message: False, timeout=self.interval, default=None)
            self.ticks += 1
            endpoint.broadcast("clock", "tick", {"ticks": self.ticks})

    async def page(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse.text(str(self.ticks))


async def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse.text("ok")


app = Endpoint(check_origin=False, extensions=[Clock()])
app.route("GET", "/health", health)
