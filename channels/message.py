"""The typed messages of the Phoenix channel protocol, and encoded frames.

Inside alight every message is one of these frozen classes; dicts and lists appear
only at the JSON edge, in the serializers. `Frame`, the encoded bytes a transport writes, is
the Transport API's (`alight.transports.base`), named here too. Refs are opaque: whatever JSON value the
client sent (usually a decimal string) is echoed back unchanged.

A payload is a JSON value (usually a dict) or `bytes` for a binary payload (Phoenix's
``{:binary, data}``), which only the V2 serializer on a WebSocket can carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..transports.base import Frame

Payload = Any
"""A JSON value (dict, list, str, number, bool, None) or `bytes` for binary."""

Ref = Any
"""An opaque client ref or join ref: usually a str, any JSON scalar is echoed as is."""


@dataclass(frozen=True, slots=True)
class Message:
    """A message on a topic: from a client (``ref`` set when it expects a reply), or a
    push from the server (``ref`` None, ``join_ref`` the channel's)."""

    topic: str
    event: str
    payload: Payload
    ref: Ref = None
    join_ref: Ref = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's answer to the client message with ``ref`` (event ``phx_reply``)."""

    topic: str
    status: str
    payload: Payload
    ref: Ref = None
    join_ref: Ref = None


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A message for every subscriber of ``topic`` (no refs on the wire)."""

    topic: str
    event: str
    payload: Payload


class Encoded:
    """A JSON object payload encoded once, to send to many clients unchanged.

    Wrap a big payload that many pushes share (a topic's ``presence_state``) so that
    each push embeds the same bytes instead of encoding the object again. The
    serializers accept it wherever a dict payload is accepted.
    """

    __slots__ = ("data", "fragment")

    def __init__(self, value: dict[str, Any]) -> None:
        if not isinstance(value, dict):
            raise TypeError(f"Encoded takes a dict (a JSON object), not {type(value).__name__}")
        self.data = orjson.dumps(value)
        self.fragment = orjson.Fragment(self.data)

    def decoded(self) -> dict[str, Any]:
        """The payload as a dict again (for tests and introspection)."""
        value: dict[str, Any] = orjson.loads(self.data)
        return value

    def __repr__(self) -> str:
        return f"Encoded({len(self.data)} bytes)"


# Control events of the protocol (docs/protocol.md §3).
PHX_JOIN = "phx_join"
PHX_LEAVE = "phx_leave"
PHX_REPLY = "phx_reply"
PHX_ERROR = "phx_error"
PHX_CLOSE = "phx_close"
HEARTBEAT = "heartbeat"
PHOENIX_TOPIC = "phoenix"

__all__ = [
    "HEARTBEAT",
    "PHOENIX_TOPIC",
    "PHX_CLOSE",
    "PHX_ERROR",
    "PHX_JOIN",
    "PHX_LEAVE",
    "PHX_REPLY",
    "Broadcast",
    "Encoded",
    "Frame",
    "Message",
    "Payload",
    "Ref",
    "Reply",
]
