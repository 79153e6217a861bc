"""An app with small limits, served in its own process (``alight run testkit.apps.small_frames:small_frames_app``)."""

from __future__ import annotations

from typing import Any

from alight.channels import Endpoint
from alight.examples.reference import UserSocket


def small_frames_app() -> Endpoint:
    """The reference socket on an endpoint whose ``max_frame_size`` is 1,000 bytes
    (``alight run testkit.apps.small_frames:small_frames_app``)."""
    app = Endpoint(check_origin=False, max_frame_size=1_000, name="small_frames")
    app.socket("/socket", UserSocket, websocket=True, longpoll=True)

    async def health(request: Any) -> Any:
        from alight.transports.http import HttpResponse

        return HttpResponse.text("ok")

    app.route("GET", "/health", health)
    return app
