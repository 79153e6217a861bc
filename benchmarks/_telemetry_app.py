"""The fan-out app of ``benchmarks/telemetry.py``, with metrics off (``plain``) and on (``metered``).

The same protocol as ``benchmarks/channel_app.py`` (what ``_loadgen.py fanout`` speaks),
with one difference: the channel broadcasts through its own endpoint
(``self.endpoint``), so that one channel class serves both endpoints and the two
differ only in ``metrics=``. Served with ``alight run benchmarks._telemetry_app:plain``
(or ``:metered``) ``--port P``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from alight.channels import Channel, Endpoint, Error, NoReply, Ok, Socket
from alight.transports.http import HttpRequest, HttpResponse


class FanoutChannel(Channel):
    async def join(self, topic: str, payload: Any) -> Ok | Error:
        return Ok()

    async def handle_in(self, event: str, payload: Any) -> Ok | Error | NoReply:
        if event == "bench_broadcast":
            started = time.perf_counter()
            topic, bevent, body, count = payload["topic"], payload["event"], payload["payload"], payload["count"]
            for _ in range(int(count)):
                self.endpoint.broadcast(topic, bevent, body)
                await asyncio.sleep(0)
            return Ok({"sent_in": time.perf_counter() - started})
        return Ok(payload)


class FanoutSocket(Socket):
    channels = {"bench:*": FanoutChannel}


async def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse.text("ok")


def _endpoint(metrics: bool) -> Endpoint:
    endpoint = Endpoint(check_origin=False, name="bench", metrics=metrics)
    endpoint.socket("/socket", FanoutSocket, websocket=True, longpoll=False)
    endpoint.route("GET", "/health", health)
    return endpoint


plain = _endpoint(metrics=False)
metered = _endpoint(metrics=True)
