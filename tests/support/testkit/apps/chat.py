"""The chat demo's endpoint served in its own process (``alight run testkit.apps.chat:served_chat``)."""

from __future__ import annotations

from alight.demo.chat import ChatEndpoint
from alight.transports.http import HttpRequest, HttpResponse


def served_chat() -> ChatEndpoint:
    """The demo's chat with ``/health`` for the test harness, and ``kill_node`` off
    (``alight run testkit.apps.chat:served_chat``)."""
    app = ChatEndpoint(kill_node=lambda: None, dashboard=False, metrics=False)

    async def health(request: HttpRequest) -> HttpResponse:
        return HttpResponse.text("ok")

    app.route("GET", "/health", health)
    return app
