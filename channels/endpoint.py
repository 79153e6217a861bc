"""The Endpoint: sockets, HTTP routes and PubSub of one application, on one node.

An `Endpoint` is configuration until it is started on a node; then it owns a small
supervision tree::

    endpoint (one_for_one)
    ├── pubsub                  forgets subscribers that exit
    ├── metrics                 holds the metrics' telemetry handlers (with ``metrics=True``)
    ├── presence                tracker shards and diff dispatcher (with ``presence=True``)
    ├── channels                DynamicSupervisor of every channel process
    ├── longpoll                DynamicSupervisor of long-poll sessions
    ├── dashboard               the dashboard's collector (with ``dashboard=True``)
    └── http                    the native listener (when a port is given)

Build one, mount sockets and routes, and run it::

    app = Endpoint(secret_key_base=os.environ["SECRET"], check_origin=False)
    app.socket("/socket", UserSocket, websocket=True, longpoll=True)
    app.route("GET", "/health", health)

    Node().serve([app.child_spec(port=4000)])      # what ``alight run`` does

On a node of a cluster (its ``remote`` is a `Distribution`, started before the
endpoint) the same endpoint is cluster-wide with no change to the app: broadcasts reach
every node, presence replicates, long-poll requests are served by any node (see
`alight.cluster.endpoint`).

`broadcast`, `broadcast_from` and `local_broadcast` are Phoenix's ``Endpoint``
functions. The same endpoint also serves as an ASGI application (`asgi`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..actors import ChildSpec, DynamicSupervisor, Node, Pid, Supervisor, spawn_link
from ..actors._api import _me
from ..actors._process import Process
from ..transports._handshake import auth_token
from ..transports._origin import check_origin
from ..transports._params import parse_params
from ..transports.base import LONGPOLL, WEBSOCKET, Accepted, Conn, ConnectInfo, Refused
from ..transports.http import HttpRequest, HttpResponse
from ._socket_server import run_socket
from .errors import ChannelError, UnsupportedVsn
from .message import Broadcast, Payload
from .pubsub import PubSub
from .serializer import negotiate
from .token import DEFAULT_MAX_AGE, sign, verify

if TYPE_CHECKING:
    from ..dashboard import Dashboard
    from ..metrics import EndpointMetrics
    from ..transports.server import ServerConfig
    from .presence.presence import Presence
    from .socket import Socket

log = logging.getLogger("alight.channels.endpoint")

CLIENT_SCRIPT_PATH = "/alight.js"
"""Where every endpoint serves the browser client as a plain script (defines ``alight``),
unless the app routes that path itself."""
CLIENT_MODULE_PATH = "/alight.mjs"
"""Where every endpoint serves the same client as an ES module (``import {Socket} from
"/alight.mjs"``), unless the app routes that path itself."""

_FACTORY_BEGIN = "// alight:factory begin"
_FACTORY_END = "// alight:factory end"
_MODULE_EXPORTS = ("Socket", "Channel", "Push", "Presence", "LongPoll", "Serializer", "vsn")


def _module_build(script: str) -> str:
    """The ES module build of ``alight.js``: the script's factory function (between its
    ``alight:factory`` markers) called with ``globalThis``, and its names exported; no
    global is defined. ``ValueError`` if the markers are missing."""
    begin = script.index("\n", script.index(_FACTORY_BEGIN)) + 1
    end = script.index(_FACTORY_END, begin)
    factory = script[begin:end].rstrip()
    exports = "".join(f"export const {name} = alight.{name}\n" for name in _MODULE_EXPORTS)
    return (
        "// alight.mjs: the ES module build of alight.js (the same source; see /alight.js).\n"
        f"const alight = ({factory})(globalThis)\n{exports}export default alight\n"
    )


@functools.cache
def _client_scripts() -> dict[str, tuple[bytes, str]]:
    """The browser client's builds by path (made once): body and ETag."""
    script = (Path(__file__).parent / "static" / "alight.js").read_text(encoding="utf-8")
    builds = {CLIENT_SCRIPT_PATH: script, CLIENT_MODULE_PATH: _module_build(script)}
    out = {}
    for path, text in builds.items():
        body = text.encode()
        out[path] = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return out


def client_script_response(request: HttpRequest) -> HttpResponse:
    """``GET /alight.js`` or ``GET /alight.mjs``: the browser client, with an ETag
    (``304`` when it matches ``If-None-Match``), a short public cache lifetime (a new
    alight version is picked up within the hour), and CORS open to every origin, as a
    page on another origin needs for a module script. ``KeyError`` for another path."""
    body, etag = _client_scripts()[request.path]
    headers = (("etag", etag), ("cache-control", "public, max-age=3600"), ("access-control-allow-origin", "*"))
    if request.header("if-none-match") == etag:
        return HttpResponse(304, headers)
    # HEAD: the server writes the headers (content-length included) and no body.
    return HttpResponse(200, (("content-type", "application/javascript; charset=utf-8"), *headers), body)


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
OriginPolicy = bool | str | list[str] | Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class SocketMount:
    """A socket mounted at ``path`` (``/socket`` serves ``/socket/websocket`` and
    ``/socket/longpoll``)."""

    path: str
    socket: type[Socket]
    websocket: bool = True
    longpoll: bool = False
    check_origin: OriginPolicy | None = None
    """None: the endpoint's policy."""


@dataclass(slots=True)
class EndpointStats:
    """Counters of a running endpoint (for the dashboard, metrics and tests)."""

    connections: int = 0
    joins: int = 0
    invalid_frames: int = 0
    """Connections closed (1011) for a frame that did not decode."""
    refused_messages: int = 0
    """Messages answered with an error for breaking a serializer limit (`MessageRefused`)."""
    refused: int = 0
    slow_consumer_disconnects: int = 0


class Endpoint:
    """Sockets, routes and PubSub of one application; see the module docstring.

    ``check_origin`` is on by default (Phoenix's default): a browser connection whose
    ``Origin`` host is not ``host`` is refused. Pass False, a list of allowed origins
    (``"https://example.com"``, ``"//*.example.com"``), ``"conn"`` (the request's own
    host) or a predicate. ``secret_key_base`` signs tokens (long-poll sessions, user
    tokens); a random one is generated if none is given, and on a clustered node
    one is derived from the cluster secret instead, so that every node agrees.

    ``presence=True`` binds a `Presence` (``endpoint.presence``) that starts with the
    tree; a `Presence` subclass binds itself with ``MyPresence(endpoint)``.

    ``metrics=True`` serves Prometheus metrics at ``GET /metrics`` (`alight.metrics`;
    ``endpoint.metrics.registry`` takes metrics of your own).

    ``dashboard=True`` serves the live dashboard at ``GET /dashboard`` (`alight.dashboard`;
    ``Dashboard(endpoint, path=..., interval=..., hosts=...)`` for other settings). It can
    kill processes: an admin tool, for loopback or behind your own authentication; it
    answers only a ``Host`` that is an IP address, ``localhost``, ``host`` or one of ``hosts``.
    """

    def __init__(
        self,
        *,
        host: str = "localhost",
        secret_key_base: str | None = None,
        check_origin: OriginPolicy = True,
        max_frame_size: int = 1_048_576,
        idle_timeout: float = 60.0,
        max_buffer: int = 1024 * 1024,
        server_config: ServerConfig | None = None,
        name: str = "endpoint",
        presence: bool = False,
        metrics: bool = False,
        dashboard: bool = False,
    ) -> None:
        self.host = host
        self.secret_key_base = secret_key_base or secrets.token_urlsafe(48)
        self.secret_key_generated = not secret_key_base
        """True when ``secret_key_base`` was generated here (on a cluster it is then
        derived from the cluster secret at start, so that every node agrees)."""
        self.check_origin = check_origin
        self.max_frame_size = max_frame_size
        self.idle_timeout = idle_timeout
        self.max_buffer = max_buffer
        """Bytes a connection may have queued before it is closed as a slow consumer."""
        self.server_config = server_config
        """The native listener's other limits (header and frame deadlines, connections
        per address, ...; `alight.transports.server.ServerConfig`), or None for its
        defaults. ``max_frame_size``, ``idle_timeout`` and ``max_buffer`` above win."""
        self.name = name
        self.mounts: dict[str, SocketMount] = {}
        self.routes: dict[tuple[str, str], Handler] = {}
        self.stats = EndpointStats()
        # Imported here: transports.server imports channels.message (a cycle at import time).
        from ..transports.server import ServerStats

        self.server_stats = ServerStats()
        """The native listener's counters (connections, frames, slow consumers, ...)."""
        self._node: Node | None = None
        self._pubsub: PubSub | None = None
        self._channel_sup: Pid | None = None
        self._longpoll_sup: Pid | None = None
        self._listener: Pid | None = None
        self.presence: Presence | None = None
        """Set by `Presence(endpoint)`; started after PubSub, before the channels."""
        if presence:
            from .presence.presence import Presence

            Presence(self)
        self.metrics: EndpointMetrics | None = None
        """With ``metrics=True``: the Prometheus metrics served at ``GET /metrics``."""
        if metrics:
            from ..metrics import METRICS_PATH, EndpointMetrics

            self.metrics = EndpointMetrics(self)
            self.route("GET", METRICS_PATH, self.metrics.scrape)
        self.dashboard: Dashboard | None = None
        """Set by `Dashboard(endpoint)`; its collector starts after the channel supervisors."""
        if dashboard:
            from ..dashboard import Dashboard

            Dashboard(self)

    # -- configuration ------------------------------------------------------------------

    def socket(
        self,
        path: str,
        socket: type[Socket],
        *,
        websocket: bool = True,
        longpoll: bool = False,
        check_origin: OriginPolicy | None = None,
    ) -> None:
        """Mount ``socket`` at ``path`` (Phoenix's ``socket "/socket", UserSocket``)."""
        path = "/" + path.strip("/")
        self.mounts[path] = SocketMount(path, socket, websocket, longpoll, check_origin)

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``method path`` with ``handler(request) -> HttpResponse``."""
        self.routes[(method.upper(), path)] = handler

    # -- runtime ---------------------------------------------------------------------------

    @property
    def node(self) -> Node:
        if self._node is None:
            raise ChannelError("the endpoint is not running; start its child_spec on a node")
        return self._node

    @property
    def pubsub(self) -> PubSub:
        if self._pubsub is None:
            raise ChannelError("the endpoint is not running; start its child_spec on a node")
        return self._pubsub

    @property
    def channel_supervisor(self) -> Pid:
        if self._channel_sup is None:
            raise ChannelError("the endpoint is not running")
        return self._channel_sup

    @property
    def longpoll_supervisor(self) -> Pid:
        if self._longpoll_sup is None:
            raise ChannelError("the endpoint is not running")
        return self._longpoll_sup

    def child_spec(self, *, port: int | None = None, host: str = "127.0.0.1", reuse_port: bool = False) -> ChildSpec:
        """The endpoint's supervision tree; with ``port``, also its native HTTP listener
        on ``host`` (127.0.0.1 by default)."""

        async def start() -> Pid:
            return await self._start_tree(port, host, reuse_port)

        return ChildSpec(id=("endpoint", self.name), start=start, type="supervisor", shutdown="infinity")

    async def _start_tree(self, port: int | None, host: str, reuse_port: bool) -> Pid:
        me = _me()
        self._node = me.node
        self._pubsub = PubSub(me.node, f"{self.name}.pubsub")
        pubsub = self._pubsub
        endpoint = self

        async def start_channels() -> Pid:
            pid = await DynamicSupervisor.start_link(max_restarts=1_000_000, max_seconds=1.0)
            endpoint._channel_sup = pid
            return pid

        async def start_longpoll() -> Pid:
            pid = await DynamicSupervisor.start_link(max_restarts=1_000_000, max_seconds=1.0)
            endpoint._longpoll_sup = pid
            return pid

        cluster = self._attach_cluster(me.node)
        children = [
            ChildSpec(id="pubsub", start=lambda: spawn_link(pubsub.run)),
            *([] if self.metrics is None else [self.metrics.child_spec()]),
            *cluster,
            *([] if self.presence is None else [self.presence.child_spec()]),
            ChildSpec(id="channels", start=start_channels, type="supervisor"),
            ChildSpec(id="longpoll", start=start_longpoll, type="supervisor"),
            *([] if self.dashboard is None else [self.dashboard.child_spec()]),
        ]
        if port is not None:
            from ..transports.listener import HttpListener
            from ..transports.server import ServerConfig

            # The endpoint's WebSocket limits are the listener's (as the ASGI app uses them).
            config = dataclasses.replace(
                self.server_config or ServerConfig(),
                max_frame_size=self.max_frame_size,
                idle_timeout=self.idle_timeout,
                max_buffer=self.max_buffer,
            )

            async def start_listener() -> Pid:
                pid = await HttpListener.start_link(
                    endpoint, host=host, port=port, reuse_port=reuse_port, config=config, stats=endpoint.server_stats
                )
                endpoint._listener = pid
                return pid

            children.append(ChildSpec(id="http", start=start_listener, shutdown=10.0))
        return await Supervisor.start_link(children, strategy="one_for_one", name=None)

    def _attach_cluster(self, node: Node) -> list[ChildSpec]:
        # On a clustered node PubSub, presence and long-poll go cluster-wide
        # (`alight.cluster.endpoint`); imported only then: a lone node needs no ZeroMQ.
        if node.remote is None:
            return []
        from ..cluster.distribution import Distribution

        if not isinstance(node.remote, Distribution):
            return []
        from ..cluster.endpoint import attach_cluster

        return attach_cluster(self, node.remote)

    # -- tokens (Phoenix.Token) -------------------------------------------------------------

    def sign_token(self, salt: str, data: Any) -> str:
        """Sign ``data`` (JSON-able) with the endpoint's secret, e.g. a user id for
        ``new Socket("/socket", {params: {token}})``; verify it in ``connect``."""
        return sign(self.secret_key_base, salt, data)

    def verify_token(self, salt: str, token: str, max_age: float = DEFAULT_MAX_AGE) -> Any:
        """The data of a token signed with `sign_token` and the same ``salt``, if it is
        at most ``max_age`` seconds old; raises `InvalidToken` / `ExpiredToken`."""
        return verify(self.secret_key_base, salt, token, max_age=max_age)

    # -- broadcasts ------------------------------------------------------------------------

    def broadcast(self, topic: str, event: str, payload: Payload) -> None:
        """Send ``event`` to every subscriber of ``topic`` on every node."""
        self.pubsub.broadcast(topic, Broadcast(topic, event, payload))

    def broadcast_from(self, from_pid: Pid, topic: str, event: str, payload: Payload) -> None:
        """Like `broadcast`, except to ``from_pid``."""
        self.pubsub.broadcast(topic, Broadcast(topic, event, payload), from_pid)

    def local_broadcast(self, topic: str, event: str, payload: Payload) -> None:
        """Like `broadcast`, on this node only."""
        self.pubsub.local_broadcast(topic, Broadcast(topic, event, payload))

    # -- what transports call (ServerHooks) ------------------------------------------------

    def match_websocket(self, path: str) -> SocketMount | None:
        if not path.endswith("/websocket"):
            return None
        mount = self.mounts.get(path[: -len("/websocket")] or "/")
        return mount if mount is not None and mount.websocket else None

    def match_longpoll(self, path: str) -> SocketMount | None:
        if not path.endswith("/longpoll"):
            return None
        mount = self.mounts.get(path[: -len("/longpoll")] or "/")
        return mount if mount is not None and mount.longpoll else None

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        """Every HTTP request that is not a WebSocket upgrade."""
        mount = self.match_longpoll(request.path)
        if mount is not None:
            from ..transports.longpoll import handle_longpoll

            return await handle_longpoll(self, mount, request)
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            if request.path in (CLIENT_SCRIPT_PATH, CLIENT_MODULE_PATH) and request.method in ("GET", "HEAD"):
                return client_script_response(request)
            if any(path == request.path for _, path in self.routes):
                return HttpResponse(405, body=b"method not allowed")
            return HttpResponse(404, body=b"not found")
        return await handler(request)

    def origin_allowed(self, mount: SocketMount, connect_info: ConnectInfo, scheme: str = "http") -> bool:
        policy = self.check_origin if mount.check_origin is None else mount.check_origin
        return check_origin(connect_info.header("origin"), policy, self.host, connect_info.header("host"), scheme)

    def start_socket(
        self,
        mount: SocketMount,
        conn: Conn,
        query_string: str,
        connect_info: ConnectInfo,
        subprotocols: list[str],
        on_result: Callable[[Accepted | Refused], None],
        owner: Process | None,
    ) -> None:
        """Start the socket process of a new connection; ``on_result`` is called once,
        with `Accepted` after ``connect`` said yes, or `Refused` (answer 403)."""
        try:
            params = parse_params(query_string)
        except ValueError as error:
            self._refuse(on_result, f"bad query string: {error}")
            return
        vsn = params.get("vsn")
        try:
            serializer = negotiate(vsn if isinstance(vsn, str) else None)
        except UnsupportedVsn as error:
            self._refuse(on_result, str(error))
            return
        if not self.origin_allowed(mount, connect_info):
            self._refuse(on_result, f"origin {connect_info.header('origin')!r} not allowed")
            return
        subprotocol = None
        if subprotocols:
            subprotocol = "phoenix" if "phoenix" in subprotocols else None
            token = auth_token(subprotocols)
            if token is not None:
                connect_info = dataclasses.replace(connect_info, auth_token=token)
        self.node.spawn_process(
            run_socket,
            (self, mount.socket, conn, serializer, params, connect_info, on_result, subprotocol),
            link=owner,
        )

    def _refuse(self, on_result: Callable[[Accepted | Refused], None], why: str) -> None:
        self.stats.refused += 1
        log.info("connection refused: %s", why)
        on_result(Refused(why, 403))

    # -- ASGI -------------------------------------------------------------------------------

    def asgi(self, node: Node | None = None) -> Any:
        """This endpoint as an ASGI application (for uvicorn, Starlette, FastAPI)."""
        from ..transports.asgi import AsgiApp

        return AsgiApp(self, node)


__all__ = ["LONGPOLL", "WEBSOCKET", "Endpoint", "EndpointStats", "SocketMount"]
