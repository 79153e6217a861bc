"""alight's channel benchmark app: what ``benchmarks/channels.py`` measures.

The same protocol surface as the raw baseline servers (``_raw_servers.py``): a
``bench:*`` channel that tracks no presence, echoes ``ping`` and, on
``bench_broadcast`` ``{"topic", "event", "payload", "count", "burst"}``, makes ``count``
endpoint broadcasts (yielding to the loop every ``burst`` of them, default 1, as the
baselines do) and
then replies ok ``{"sent_in": seconds}``. Served with
``alight run benchmarks.channel_app:app --port P``; ``:metered`` is the same app with
`EndpointMetrics` (what ``benchmarks/telemetry.py`` compares it with).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from alight.channels import Channel, Endpoint, Error, NoReply, Ok, Socket
from alight.metrics import EndpointMetrics
from alight.transports.http import HttpRequest, HttpResponse


class BenchChannel(Channel):
    async def join(self, topic: str, payload: Any) -> Ok | Error:
        return Ok()

    async def handle_in(self, event: str, payload: Any) -> Ok | Error | NoReply:
        if event == "bench_broadcast":
            started = time.perf_counter()
            topic, bevent, body, count = payload["topic"], payload["event"], payload["payload"], payload["count"]
            burst = max(1, int(payload.get("burst", 1)))
            endpoint = self.endpoint
            for i in range(1, int(count) + 1):
                endpoint.broadcast(topic, bevent, body)
                if i % burst == 0:
                    await asyncio.sleep(0)
            return Ok({"sent_in": time.perf_counter() - started})
        return Ok(payload)


class BenchSocket(Socket):
    channels = {"bench:*": BenchChannel}


async def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse.text("ok")


def make_app(*, metrics: bool = False) -> Endpoint:
    """The benchmark endpoint: the ``bench:*`` socket at ``/socket``, ``GET /health``."""
    endpoint = Endpoint(check_origin=False, name="bench", log=None)  # no line per join under load
    if metrics:
        EndpointMetrics(endpoint)
    endpoint.socket("/socket", BenchSocket, websocket=True, longpoll=False)
    endpoint.route("GET", "/health", health)
    return endpoint


app = make_app()
metered = make_app(metrics=True)
