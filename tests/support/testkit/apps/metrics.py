"""An app with `EndpointMetrics` for `test_telemetry_served`: ``alight run
testkit.apps.metrics:app`` or ``uvicorn testkit.apps.metrics:asgi_app``."""

from __future__ import annotations

from typing import Any

from alight.channels import Channel, Endpoint, Error, Ok, Socket
from alight.metrics import EndpointMetrics
from alight.transports.http import HttpRequest, HttpResponse


class EchoChannel(Channel):
    async def join(self, topic: str, payload: Any) -> Ok | Error:
        return Ok()

    async def handle_in(self, event: str, payload: Any) -> Ok:
        return Ok(payload)


class EchoSocket(Socket):
    channels = {"echo:*": EchoChannel}


async def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse.text("ok")


app = Endpoint(check_origin=False)
EndpointMetrics(app)
app.socket("/socket", EchoSocket, websocket=True, longpoll=True)
app.route("GET", "/health", health)

asgi_app = app.asgi()
