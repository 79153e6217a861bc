"""The Transport API: what a transport gives the socket layer, and what it gets.

A transport (WebSocket, long-poll, or a third one) turns a client connection into
a `Conn` and a socket process:

1. It parses the request and builds the ``params`` (the query string, parsed with
   Plug's rules: `parse_params`) and a `ConnectInfo`.
2. It asks the endpoint to start a socket process for the mount
   (``Endpoint.start_socket``), which runs serializer negotiation, the origin check,
   ``Socket.connect`` and ``Socket.id``, and answers `Accepted` or `Refused`.
   A refused WebSocket gets HTTP 403 with an empty body; a refused long-poll request
   gets ``{"status": 403}``.
3. From then on the transport sends the socket process an `Inbound` message per
   client frame (the socket process calls ``Conn.inbound_handled`` after each one),
   and one `TransportClosed` when the connection is gone; the socket layer writes
   `Frame` objects to the `Conn` (from the socket process, the channel processes,
   and PubSub's fastlane) and closes it when the socket stops.

`Conn.write` never blocks and never raises. Each connection's outgoing buffer is
bounded in bytes (``max_buffer``); a client that does not read and lets it overflow
is disconnected as a slow consumer (WebSocket close code 1008, reason
``"slow consumer"``) and counted in the endpoint's `TransportStats`. Every transport
decides this, the idle timeout, the frame size bound, its close states and its
inbound back-pressure with the one `alight.transports.policy.ConnectionPolicy`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from .http import HttpRequest, HttpResponse, last_header

if TYPE_CHECKING:
    from ..actors import Node
    from ..actors.lowlevel import Process

WEBSOCKET = "websocket"
LONGPOLL = "longpoll"

# WebSocket close codes used by the socket layer, as Phoenix/Bandit send them.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the "disconnect" broadcast (Phoenix >= 1.8.8)
CLOSE_PROTOCOL_ERROR = 1002  # idle timeout (Bandit)
CLOSE_POLICY = 1008  # slow consumer
CLOSE_TOO_BIG = 1009  # frame over max_frame_size
CLOSE_INTERNAL = 1011  # invalid frame: the socket process crashed, as in Phoenix
CLOSE_RESTART = 1012  # server drain / restart
CLOSE_TRY_AGAIN = 1013  # over the listener's budget for unfinished frames


class Frame:
    """One encoded frame: the bytes to write and whether it is a binary frame.

    Text frames carry UTF-8 JSON. A broadcast is encoded into one `Frame` per
    serializer and that same object is written to every subscriber (fastlane).
    ``wire`` is a cache for the transport: the WebSocket transport stores the
    complete framed bytes (header + data) there the first time it writes the frame,
    so a broadcast is framed once, not once per client.
    """

    __slots__ = ("binary", "data", "wire")

    def __init__(self, data: bytes, binary: bool = False) -> None:
        self.data = data
        self.binary = binary
        self.wire: bytes | None = None

    def __repr__(self) -> str:
        kind = "binary" if self.binary else "text"
        return f"Frame({kind}, {self.data[:80]!r}{'...' if len(self.data) > 80 else ''})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and other.data == self.data and other.binary == self.binary

    def __hash__(self) -> int:
        return hash((self.data, self.binary))


class Conn(ABC):
    """The transport's side of one client connection, as the socket layer sees it."""

    transport: str = ""
    """``"websocket"`` or ``"longpoll"`` (or a third transport's name)."""

    @abstractmethod
    def write(self, frame: Frame) -> None:
        """Queue ``frame`` for the client. Never blocks, never raises; dropped once
        the connection is closed. Overflowing the byte bound closes the connection
        as a slow consumer."""

    @abstractmethod
    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the connection (flushing what is queued); idempotent."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once `close` was called or the client went away."""

    def supports_binary(self) -> bool:
        """Whether binary frames can reach the client (WebSocket only)."""
        return self.transport == WEBSOCKET

    def inbound_handled(self) -> None:  # noqa: B027 - optional: a transport without credits ignores it
        """The socket process has handled one `Inbound` frame of this connection (a
        credit back: a transport stops reading while too many are in flight, see
        `alight.transports.policy`). Called from the socket process; never raises."""


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """What ``Socket.connect`` may know about the connection (Phoenix's connect_info).

    ``headers`` holds every request header (lower-case names, in order); ``x_headers``
    the ``x-*`` ones; ``auth_token`` the token the 1.8 client sends in the
    ``Sec-WebSocket-Protocol`` header or ``X-Phoenix-AuthToken`` (long-poll).
    """

    peer: tuple[str, int] | None = None
    uri: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str | None = None
    auth_token: str | None = None
    transport: str = WEBSOCKET

    @property
    def x_headers(self) -> tuple[tuple[str, str], ...]:
        return tuple((k, v) for k, v in self.headers if k.startswith("x-"))

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), or None."""
        return last_header(self.headers, name)


@dataclass(frozen=True, slots=True)
class Inbound:
    """A frame from the client, for the socket process."""

    data: bytes
    binary: bool = False


@dataclass(frozen=True, slots=True)
class TransportClosed:
    """The connection is gone (client close, network error, idle timeout, ...)."""

    reason: str = "closed"
    code: int | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """The socket process accepted the connection; it runs as ``pid``."""

    pid: Any
    subprotocol: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """The connection was refused (bad vsn, origin, or ``connect`` said no)."""

    reason: str = "refused"
    status: int = 403
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sync:
    """Ask the socket process to answer `Synced(ref)` to ``reply_to`` once every
    message sent to it before this one has been handled (long-poll POST acks)."""

    reply_to: Any
    ref: Any


@dataclass(frozen=True, slots=True)
class Synced:
    ref: Any


@dataclass(slots=True)
class TransportStats:
    """Counters of an endpoint's transports: one object for the native listener, the
    ASGI adapter and long-poll (or for several listeners, if they are given the same).

    ``connections`` and ``websockets`` are the open ones now (native listener); the
    rest are totals. The HTTP counters (``requests`` .. ``refused_per_address``) and
    the frame and byte counters are the native listener's; the connection policy's
    (``slow_consumer_disconnects``, ``idle_timeouts``, ``frames_too_big``) count every
    transport.
    """

    connections: int = 0
    connections_total: int = 0
    websockets: int = 0
    requests: int = 0
    request_crashes: int = 0
    bad_requests: int = 0
    request_timeouts: int = 0
    refused_per_address: int = 0
    slow_consumer_disconnects: int = 0
    idle_timeouts: int = 0
    frames_too_big: int = 0
    partial_frame_closes: int = 0
    frame_timeouts: int = 0
    abnormal_closes: int = 0
    """WebSockets that ended without a close frame (1006): the client vanished, or a
    proxy closed the connection (nginx's ``proxy_read_timeout`` on an idle one)."""
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def snapshot(self) -> TransportStats:
        """A copy, for comparing before and after."""
        return replace(self)


@dataclass(frozen=True, slots=True)
class ConnLimits:
    """What every transport enforces on a connection (the endpoint's settings).

    ``max_frame_size``: bytes of one client frame (over it: WebSocket close 1009,
    long-poll ``413``); ``idle_timeout``: seconds without a client frame before a
    WebSocket is closed (1002; long-poll sessions have their own inactivity);
    ``max_buffer``: bytes queued for a client before it is closed as a slow consumer.
    """

    max_frame_size: int = 1_048_576
    idle_timeout: float = 60.0
    max_buffer: int = 1_048_576


class SocketHost(Protocol):
    """What a transport needs from the endpoint it serves (the endpoint implements it).

    Transports (the native listener, the ASGI adapter: `alight.transports.asgi.AsgiHost`
    adds what it needs) know the endpoint only through this protocol: nothing in
    `alight.transports` imports `alight.channels`. The native listener is given its
    limits and counters (`ServerConfig`, `TransportStats`) when it starts.
    """

    @property
    def node(self) -> Node:
        """The node whose loop the transport runs on."""

    def match_websocket(self, path: str) -> object | None:
        """The socket mount for a WebSocket ``path`` (``"/socket/websocket"``), or None."""

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        """Answer any request that is not a WebSocket upgrade on a mounted path.

        Runs in its own process, linked to the listener; raising gives the client a
        500 and logs a crash report."""

    def start_socket(
        self,
        mount: Any,
        conn: Conn,
        params_query: str,
        connect_info: ConnectInfo,
        subprotocols: list[str],
        on_result: Callable[[Accepted | Refused], None],
        owner: Process | None,
        /,
    ) -> None:
        """Spawn the socket process for ``conn`` and return at once.

        The socket process runs negotiation, the origin check and ``connect``, then
        calls ``on_result`` once (from any process on the node's loop): `Accepted`
        (with the subprotocol to answer, which must be one of ``subprotocols`` when
        the client offered any) or `Refused`. It should be spawned linked to ``owner``, the
        listener's process (``node.spawn_process(..., link=owner)``); the server
        links it on `Accepted` if not. ``subprotocols`` is the
        client's offer in order; a 1.8 auth token in it is already decoded into
        ``connect_info.auth_token``."""
