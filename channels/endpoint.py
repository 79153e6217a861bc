"""The Endpoint: sockets, HTTP routes and PubSub of one application, on one node.

An `Endpoint` is configuration until it is started on a node; then it owns a small
supervision tree::

    endpoint (one_for_one)
    ├── pubsub                  forgets subscribers that exit
    ├── metrics                 telemetry handlers (with ``EndpointMetrics(endpoint)``)
    ├── (cluster relays)        on a clustered node (``alight.cluster``)
    ├── presence                tracker shards and diff dispatcher (with ``presence=True``)
    ├── channels                DynamicSupervisor of every channel process
    ├── longpoll                DynamicSupervisor of long-poll sessions (with ``longpoll=True``)
    ├── dashboard               the dashboard's collector (with ``Dashboard(endpoint)``)
    ├── http                    the native listener (when a port is given)
    └── drainer                 on an orderly stop, closes the connections in batches

Everything but ``pubsub``, ``channels`` and ``http`` is an `Extension`
(`alight.channels.extension`), started in its phase: the endpoint composes them and
knows none of them.

Build one, mount sockets and routes, and run it::

    app = Endpoint(secret_key_base=os.environ["SECRET"], check_origin=False)
    app.socket("/socket", UserSocket, websocket=True, longpoll=True)
    app.route("GET", "/health", health)

    Node().serve([app.child_spec(port=4000)])      # what ``alight run`` does

On a node of a cluster (its ``remote`` is a `Distribution`, started before the
endpoint) the same endpoint is cluster-wide with no change to the app: the node's
remote adds its extension (`EndpointAttachment`), so broadcasts reach every node,
presence replicates, long-poll requests are served by any node (see
`alight.cluster.endpoint`).

Transports (the native listener, the ASGI adapter) see the endpoint as a
`alight.transports.base.SocketHost`.

`broadcast`, `broadcast_from` and `local_broadcast` are Phoenix's ``Endpoint``
functions. The same endpoint also serves as an ASGI application (`asgi`).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..actors import ChildSpec, DynamicSupervisor, Node, Pid, Supervisor, spawn_link
from ..actors.lowlevel import Process, current_process
from ..transports.asgi import AsgiApp
from ..transports.base import (
    LONGPOLL,
    WEBSOCKET,
    Accepted,
    Conn,
    ConnectInfo,
    ConnLimits,
    Refused,
    TransportStats,
)
from ..transports.handshake import auth_token
from ..transports.http import HttpRequest, HttpResponse
from ..transports.listener import HttpListener
from ..transports.origin import check_origin
from ..transports.params import parse_params
from ..transports.server import ServerConfig
from ._socket_server import run_socket
from .client_script import client_script_response, is_client_script
from .drainer import Drainer, DrainReport
from .errors import ChannelError, EndpointNotRunning, UnsupportedVsn
from .extension import EndpointAttachment, Extension, Phase
from .longpoll import LongPoll
from .message import Broadcast, Payload
from .presence.presence import Presence
from .pubsub import LocalAdapter, PubSub
from .serializer import negotiate
from .token import DEFAULT_MAX_AGE, sign, verify

DEFAULT_DRAINER = Drainer()
"""Phoenix's: batches of 10,000, 2 s apart, 30 s in all."""

if TYPE_CHECKING:
    from .socket import Socket

log = logging.getLogger("alight.channels.endpoint")

E = TypeVar("E", bound=Extension)
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

    Extensions add the rest (`alight.channels.extension`): ``EndpointMetrics(endpoint)``
    (`alight.metrics`: Prometheus at ``GET /metrics``) and ``Dashboard(endpoint)``
    (`alight.dashboard`: the live dashboard at ``GET /dashboard``, an admin tool) bind
    themselves, as ``Presence`` does; ``extensions`` (or `extend`) adds your own.

    ``drainer`` (`alight.channels.drainer.Drainer`, Phoenix's defaults) is how an
    orderly stop closes the connections: presence leaves the cluster first, then the
    connections close in batches; None closes them all at once.
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
        extensions: Iterable[Extension] = (),
        drainer: Drainer | None = DEFAULT_DRAINER,
        log: str | int | None = "info",
    ) -> None:
        self.host = host
        self.secret_key_base = secret_key_base or secrets.token_urlsafe(48)
        self.secret_key_generated = not secret_key_base
        """True when ``secret_key_base`` was generated here (on a cluster it is then
        derived from the cluster secret at start, so that every node agrees)."""
        self.check_origin = check_origin
        self.log_level: int | None = _log_level(log)
        """The level of the connect and join lines (``CONNECTED TO UserSocket in 120µs``,
        ``JOINED room:lobby in 30µs``), as Phoenix's socket ``log:`` option: ``"info"``
        by default, ``None`` (or ``False``) for none, e.g. under load tests."""
        self.connection_limits = ConnLimits(max_frame_size, idle_timeout, max_buffer)
        """What every transport enforces: ``max_frame_size``, ``idle_timeout`` and
        ``max_buffer`` (bytes a connection may have queued before it is closed as a
        slow consumer)."""
        self.server_config = server_config
        """The native listener's other limits (header and frame deadlines, connections
        per address, ...; `alight.transports.server.ServerConfig`), or None for its
        defaults. ``max_frame_size``, ``idle_timeout`` and ``max_buffer`` above win."""
        self.name = name
        self.mounts: dict[str, SocketMount] = {}
        self.routes: dict[tuple[str, str], Handler] = {}
        self.stats = EndpointStats()
        self.transport_stats = TransportStats()
        """Every transport's counters (listener, ASGI, long-poll; one object)."""
        self.extensions: list[Extension] = []
        """In the order they were added (`extend`)."""
        self._node: Node | None = None
        self._active: list[Extension] = self.extensions
        """The extensions of the running tree, in installation order: the added ones
        and, on a clustered node, the one its remote attached (`active_extensions`)."""
        self._pubsub: PubSub | None = None
        self._channel_sup: Pid | None = None
        self._listener: Pid | None = None
        self.presence: Presence | None = None
        """Set by `Presence(endpoint)`; started after PubSub, before the channels."""
        self.longpoll: LongPoll | None = None
        """Set by the first socket mounted with ``longpoll=True``."""
        self.drainer = drainer
        """How the endpoint drains on an orderly stop (`alight.channels.drainer`; None:
        every connection closes at once)."""
        self.last_drain: DrainReport | None = None
        """What the last drain did (None: none yet)."""
        if presence:
            Presence(self)
        for extension in extensions:
            self.extend(extension)

    @property
    def max_frame_size(self) -> int:
        return self.connection_limits.max_frame_size

    @property
    def idle_timeout(self) -> float:
        return self.connection_limits.idle_timeout

    @property
    def max_buffer(self) -> int:
        return self.connection_limits.max_buffer

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
        if longpoll and self.longpoll is None:
            self.extend(LongPoll())

    def extend(self, extension: Extension) -> None:
        """Add ``extension`` (`alight.channels.extension`): its ``installed`` hook runs
        now, its children start with the endpoint's tree in its phase. Add extensions
        before the endpoint starts."""
        if self._node is not None:
            raise ChannelError(f"endpoint {self.name!r} is running: add extensions before it starts")
        self.extensions.append(extension)
        extension.installed(self)

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``method path`` with ``handler(request) -> HttpResponse``."""
        self.routes[(method.upper(), path)] = handler

    @property
    def active_extensions(self) -> list[Extension]:
        """The extensions whose hooks run for the running tree (`extensions`, then the
        one the node's remote attached as the tree started, if any); `extensions`
        before it starts."""
        return self._active

    def extension(self, kind: type[E]) -> E | None:
        """The first extension added that is a ``kind`` (e.g. ``endpoint.extension(Dashboard)``), or None."""
        for extension in self.extensions:
            if isinstance(extension, kind):
                return extension
        return None

    # -- runtime ---------------------------------------------------------------------------

    @property
    def node(self) -> Node:
        if self._node is None:
            raise EndpointNotRunning("the endpoint is not running; start its child_spec on a node")
        return self._node

    @property
    def pubsub(self) -> PubSub:
        if self._pubsub is None:
            raise EndpointNotRunning("the endpoint is not running; start its child_spec on a node")
        return self._pubsub

    @property
    def listener(self) -> Pid | None:
        """The native listener's process while it runs (None under ASGI, or stopped)."""
        return self._listener

    @property
    def channel_supervisor(self) -> Pid:
        if self._channel_sup is None:
            raise EndpointNotRunning("the endpoint is not running")
        return self._channel_sup

    def child_spec(self, *, port: int | None = None, host: str = "127.0.0.1", reuse_port: bool = False) -> ChildSpec:
        """The endpoint's supervision tree; with ``port``, also its native HTTP listener
        on ``host`` (127.0.0.1 by default)."""

        async def start() -> Pid:
            return await self._start_tree(port, host, reuse_port)

        return ChildSpec(id=("endpoint", self.name), start=start, type="supervisor", shutdown="infinity")

    async def _start_tree(self, port: int | None, host: str, reuse_port: bool) -> Pid:
        me = current_process()
        self._node = me.node
        self._pubsub = PubSub(me.node, f"{self.name}.pubsub")
        pubsub = self._pubsub
        endpoint = self

        async def start_channels() -> Pid:
            pid = await DynamicSupervisor.start_link(max_restarts=1_000_000, max_seconds=1.0)
            endpoint._channel_sup = pid
            return pid

        extensions = list(self.extensions)
        remote = me.node.remote
        if isinstance(remote, EndpointAttachment):
            attached = remote.endpoint_extension(self)
            if attached is not None:
                extensions.append(attached)
                attached.installed(self)
        self._active = list(extensions)  # before the phase sort: hooks run in installation order
        # Stable: installation order within a phase. Each extension's child_specs is
        # called in this order, so an earlier phase may configure a later one.
        extensions.sort(key=lambda extension: extension.phase)
        before = [extension for extension in extensions if extension.phase < Phase.SESSIONS]
        after = [extension for extension in extensions if extension.phase >= Phase.SESSIONS]
        children = [ChildSpec(id="pubsub", start=lambda: spawn_link(pubsub.run))]
        children += [child for extension in before for child in extension.child_specs(self)]
        if type(pubsub.adapter) is LocalAdapter and (worker := _one_of_several_workers()):
            log.warning(
                "endpoint %r runs in %s with no cluster and no broker: broadcasts, presence and long-poll "
                "sessions stay in this process, and clients of the other workers miss them; run each worker "
                "as a cluster node (alight node --reuse-port) or share a broker (RedisPubSub)",
                self.name,
                worker,
            )
        children.append(ChildSpec(id="channels", start=start_channels, type="supervisor"))
        children += [child for extension in after for child in extension.child_specs(self)]
        if port is not None:
            children.append(self._listener_spec(port, host, reuse_port))
        if self.drainer is not None:
            children.append(self.drainer.child_spec(self))  # stopped first: it drains
        return await Supervisor.start_link(children, strategy="one_for_one", name=None)

    def _listener_spec(self, port: int, host: str, reuse_port: bool) -> ChildSpec:
        # The endpoint's connection limits are the listener's (as the ASGI app uses them).
        config = dataclasses.replace(
            self.server_config or ServerConfig(),
            max_frame_size=self.max_frame_size,
            idle_timeout=self.idle_timeout,
            max_buffer=self.max_buffer,
        )
        endpoint = self

        async def start_listener() -> Pid:
            pid = await HttpListener.start_link(
                endpoint, host=host, port=port, reuse_port=reuse_port, config=config, stats=endpoint.transport_stats
            )
            endpoint._listener = pid
            return pid

        return ChildSpec(id="http", start=start_listener, shutdown=10.0)

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

    # -- what transports call (SocketHost) ------------------------------------------------

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
        """Every HTTP request that is not a WebSocket upgrade: the extensions first (in
        order, the node's attachment last), then the routes, then the browser client's script."""
        for extension in self._active:
            response = await extension.handle_http(self, request)
            if response is not None:
                return response
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            if is_client_script(request):
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
        /,
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
        return AsgiApp(self, node)


__all__ = ["LONGPOLL", "WEBSOCKET", "Endpoint", "EndpointStats", "SocketMount"]


def _one_of_several_workers() -> str | None:
    """What makes this process look like one worker of a multi-process server (uvicorn
    ``--workers`` starts them with multiprocessing; gunicorn says so in
    ``SERVER_SOFTWARE``), or None."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        return f"a worker process (of pid {parent.pid})"
    if os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        return "a gunicorn worker"
    return None


def _log_level(level: str | int | None) -> int | None:
    """``"info"``, ``logging.INFO`` or None/False as the numeric level (or None)."""
    if level is None or level is False:
        return None
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"log must be a logging level such as 'info' or 'debug', or None, not {level!r}")
    return number
