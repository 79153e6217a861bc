"""`Dashboard`: what ``Endpoint(dashboard=True)`` mounts.

- ``GET /dashboard``: one self-contained page (``static/dashboard.html``, no build
  step, no CDN) that loads the endpoint's ``/alight.js``;
- ``/dashboard/socket`` (WebSocket): `DashboardSocket`, origin-checked with
  ``"conn"`` (the page's own host only), whatever the endpoint's policy for other sockets;
- a `Collector` in the endpoint's tree, registered as ``<endpoint name>.dashboard``.

The dashboard can kill any process of any node of the cluster: it is an admin tool.
The listener binds 127.0.0.1 unless told otherwise; do not expose a port that serves
it to people who should not have that power (put it behind your own authentication,
or run the dashboard on an endpoint of its own on a loopback port).
"""

from __future__ import annotations

import functools
import html
from pathlib import Path
from typing import TYPE_CHECKING

from ..actors import ChildSpec
from ..transports.http import HttpRequest, HttpResponse
from .channel import DashboardSocket
from .collector import Collector

if TYPE_CHECKING:
    from ..channels.endpoint import Endpoint

DEFAULT_PATH = "/dashboard"
DEFAULT_INTERVAL = 1.0
"""Seconds between snapshots while someone watches."""


@functools.cache
def _page_template() -> str:
    return (Path(__file__).parent / "static" / "dashboard.html").read_text(encoding="utf-8")


class Dashboard:
    """The dashboard of ``endpoint``; binds itself (``endpoint.dashboard``), mounts its
    page and socket under ``path``, and adds its collector to the endpoint's tree.
    ``interval`` is the seconds between snapshots while a page watches."""

    def __init__(self, endpoint: Endpoint, *, path: str = DEFAULT_PATH, interval: float = DEFAULT_INTERVAL) -> None:
        if interval <= 0:
            raise ValueError(f"dashboard interval must be positive seconds, not {interval!r}")
        self.endpoint = endpoint
        self.path = "/" + path.strip("/")
        self.interval = interval
        self.collector_name = f"{endpoint.name}.dashboard"
        """The name the collector is registered under, on every node."""
        endpoint.dashboard = self
        endpoint.socket(self.socket_path, DashboardSocket, websocket=True, longpoll=False, check_origin="conn")
        endpoint.route("GET", self.path, self.page)

    @property
    def socket_path(self) -> str:
        return self.path + "/socket"

    def child_spec(self) -> ChildSpec:
        """The collector, for the endpoint's tree (started after its channel supervisors)."""
        return Collector.child_spec(self.endpoint, self.interval, id="dashboard", name=self.collector_name)

    async def page(self, request: HttpRequest) -> HttpResponse:
        """``GET /dashboard``: the page, told this node's name and the socket's path."""
        body = (
            _page_template()
            .replace("{{node}}", html.escape(self.endpoint.node.name, quote=True))
            .replace("{{socket}}", html.escape(self.socket_path, quote=True))
        )
        headers = (
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-store"),
            ("x-frame-options", "DENY"),
            (
                "content-security-policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
            ),
        )
        return HttpResponse(200, headers, body.encode())


__all__ = ["DEFAULT_INTERVAL", "DEFAULT_PATH", "Dashboard"]
