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
   client frame, and one `TransportClosed` when the connection is gone; the socket
   layer writes `Frame` objects to the `Conn` (from the socket process, the channel
   processes, and PubSub's fastlane) and closes it when the socket stops.

`Conn.write` never blocks and never raises. Each connection's outgoing buffer is
bounded in bytes (``max_buffer``); a client that does not read and lets it overflow
is disconnected as a slow consumer (WebSocket close code 1008, reason
``"slow consumer"``) and counted in the endpoint's statistics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .http import last_header

if TYPE_CHECKING:
    from ..channels.message import Frame

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
