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

Loopback alone does not keep a web page out: by DNS rebinding, a page of
``http://evil.example:4000`` can have its name resolve to 127.0.0.1 and then be the
dashboard's own origin. So the page and its socket answer only requests whose ``Host``
is an IP address, ``localhost``, the endpoint's ``host``, or one of ``hosts`` (the names
you serve the dashboard under); any other gets 403 (`host_allowed`).
"""

from __future__ import annotations

import functools
import html
import ipaddress
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..actors import ChildSpec
from ..channels.extension import Extension, Phase
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


# RFC 9110 Host: a name or IPv4 address, or an IPv6 address in brackets; an optional port.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})(?::[0-9]{1,5})?")


def host_allowed(host_header: str | None, names: Iterable[str]) -> bool:
    """Whether a request with this ``Host`` header may use the dashboard: its host is an
    IP address (v4 or v6), ``localhost``, or one of ``names`` (case-insensitive). A
    malformed header is refused; a request without one (not a browser: every browser
    sends ``Host``) is let through, as a request without ``Origin`` is by the origin
    check. A DNS-rebinding page always comes with a name of its own, so it is refused."""
    if host_header is None:
        return True
    match = _HOST.fullmatch(host_header)
    if match is None:
        return False
    host = match.group(1).strip("[]").lower().rstrip(".")
    if host == "localhost" or host in {name.lower().rstrip(".") for name in names}:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Dashboard(Extension):
    """The dashboard of ``endpoint``; binds itself (``endpoint.extension(Dashboard)``), mounts its
    page and socket under ``path``, and adds its collector to the endpoint's tree.
    ``interval`` is the seconds between snapshots while a page watches. ``hosts`` are
    the host names (besides IP addresses, ``localhost`` and ``endpoint.host``) the
    dashboard is served under: a request with another ``Host`` gets 403 (see the module
    docstring: DNS rebinding)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        path: str = DEFAULT_PATH,
        interval: float = DEFAULT_INTERVAL,
        hosts: Iterable[str] = (),
    ) -> None:
        if interval <= 0:
            raise ValueError(f"dashboard interval must be positive seconds, not {interval!r}")
        if isinstance(hosts, str):
            raise TypeError(f"dashboard hosts is a list of host names, not the string {hosts!r}")
        self.endpoint = endpoint
        self.path = "/" + path.strip("/")
        self.interval = interval
        self.hosts = (endpoint.host, *hosts)
        """The host names the page and socket answer under (besides IP addresses and ``localhost``)."""
        self.collector_name = f"{endpoint.name}.dashboard"
        """The name the collector is registered under, on every node."""
        self.socket = DashboardSocket.bound(self)
        """The socket class mounted at `socket_path` (`DashboardSocket` bound to this dashboard)."""
        endpoint.extend(self)

    # -- the extension ----------------------------------------------------------------------

    phase = Phase.SERVICES

    def installed(self, endpoint: Endpoint) -> None:
        endpoint.socket(
            self.socket_path, DashboardSocket.bound(self), websocket=True, longpoll=False, check_origin="conn"
        )
        endpoint.route("GET", self.path, self.page)

    def child_specs(self, endpoint: Endpoint) -> Sequence[ChildSpec]:
        return [self.child_spec()]

    @property
    def socket_path(self) -> str:
        """Where `DashboardSocket` is mounted (``<path>/socket``); the page connects there."""
        return self.path + "/socket"

    def allows_host(self, host_header: str | None) -> bool:
        """Whether a request with this ``Host`` header may use the dashboard (`host_allowed`)."""
        return host_allowed(host_header, self.hosts)

    def child_spec(self) -> ChildSpec:
        """The collector, for the endpoint's tree (started after its channel supervisors)."""
        return Collector.child_spec(self.endpoint, self.interval, id="dashboard", name=self.collector_name)

    async def page(self, request: HttpRequest) -> HttpResponse:
        """``GET /dashboard``: the page, told this node's name and the socket's path;
        403 for a ``Host`` the dashboard does not answer under (`allows_host`). Its one
        inline script runs by a fresh CSP nonce; no other inline script can run."""
        host = request.header("host")
        if not self.allows_host(host):
            refusal = (
                f"dashboard: host {(host or '')[:100]!r} not allowed; serve it under an IP address, "
                "localhost or the endpoint's host, or list the name in Dashboard(endpoint, hosts=[...])\n"
            )
            plain = (("content-type", "text/plain; charset=utf-8"), ("x-content-type-options", "nosniff"))
            return HttpResponse(403, plain, refusal.encode())
        nonce = secrets.token_urlsafe(18)
        body = (
            _page_template()
            .replace("{{node}}", html.escape(self.endpoint.node.name, quote=True))
            .replace("{{socket}}", html.escape(self.socket_path, quote=True))
            .replace("{{nonce}}", nonce)
        )
        headers = (
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-store"),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            (
                "content-security-policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                f"script-src 'self' 'nonce-{nonce}'; connect-src 'self'; base-uri 'none'; "
                "form-action 'none'; frame-ancestors 'none'",
            ),
        )
        return HttpResponse(200, headers, body.encode())


__all__ = ["DEFAULT_INTERVAL", "DEFAULT_PATH", "Dashboard", "host_allowed"]
