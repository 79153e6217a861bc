"""The Socket behaviour: authenticates a connection and routes topics to channels.

Subclass `Socket` once per kind of client, route topics with `channels`, and mount
it on an endpoint::

    class UserSocket(Socket):
        channels = {"room:*": RoomChannel}

        async def connect(self, params, connect_info):
            if params.get("token") == "bad":
                return False
            self.assigns["user_id"] = params.get("user_id", "anon")
            return True

        def id(self):
            return f"user_socket:{self.assigns['user_id']}"

One socket process runs per connection. ``connect`` runs in it before the
connection is accepted (a WebSocket gets HTTP 403 when it returns False); ``id``
names the socket so that ``endpoint.broadcast(id, "disconnect", {})`` closes every
connection of that user, on every node. Routes are exact topics or a prefix ending
in ``*`` (``"room:*"``), matched in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .channel import Channel

if TYPE_CHECKING:
    from ..transports.base import ConnectInfo
    from .endpoint import Endpoint


class Socket:
    """Base class of sockets; see the module docstring."""

    channels: ClassVar[dict[str, type[Channel]]] = {}
    """Topic pattern -> channel class, matched in order."""

    max_channels: ClassVar[int] = 100
    """Channels one connection may join at once (Phoenix's ``max_channels_per_transport``)."""

    def __init__(self, endpoint: Endpoint, transport: str) -> None:
        self.endpoint = endpoint
        self.transport = transport
        self.assigns: dict[str, Any] = {}
        """Set in `connect`; every channel gets a copy at join."""

    async def connect(self, params: dict[str, Any], connect_info: ConnectInfo) -> bool:
        """Accept (True) or refuse (False) the connection; the default accepts."""
        return True

    def id(self) -> str | None:
        """The socket's id topic, or None for anonymous sockets."""
        return None

    @classmethod
    def route(cls, topic: str) -> type[Channel] | None:
        """The channel class for ``topic``, or None ("unmatched topic")."""
        for pattern, channel in cls.channels.items():
            if pattern.endswith("*"):
                if topic.startswith(pattern[:-1]):
                    return channel
            elif topic == pattern:
                return channel
        return None
