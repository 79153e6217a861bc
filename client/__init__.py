"""alight's Python client for Phoenix Channels (asyncio; WebSocket or long-poll; ``vsn`` 2.0.0 or 1.0.0).

Socket, Channel and Presence with the semantics of phoenix.js 1.8 (docs/protocol.md §3.4,
§6.4)::

    from ..client import Socket

    async with Socket("ws://localhost:4000/socket", params={"user_id": "ann"}) as socket:
        channel = socket.channel("room:lobby")
        await channel.join()                       # JoinError / PushTimeout on failure
        reply = await channel.push("ping", {"n": 1})   # Reply(status="ok", response={...})
        async for message in channel:              # Message(topic, event, payload, ...)
            print(message.event, message.payload)

Exceptions are in `alight.client.errors` (root `ClientError`). The frame codec, the
backoff and the presence sync are pure code (``_frames``, ``_backoff``, `presence`).
"""

from __future__ import annotations

from ._backoff import RECONNECT_STEPS, REJOIN_STEPS, backoff
from .channel import Channel, ChannelState
from .errors import ChannelClosed, ClientEncodeError, ClientError, ConnectFailed, JoinError, PushTimeout
from .message import Message, Reply
from .presence import Presence, list_presences, sync_diff, sync_state
from .socket import LongPoll, Socket, Transport, WebSocket

__all__ = [
    "RECONNECT_STEPS",
    "REJOIN_STEPS",
    "Channel",
    "ChannelClosed",
    "ChannelState",
    "ClientError",
    "ClientEncodeError",
    "ConnectFailed",
    "JoinError",
    "LongPoll",
    "Message",
    "Presence",
    "PushTimeout",
    "Reply",
    "Socket",
    "Transport",
    "WebSocket",
    "backoff",
    "list_presences",
    "sync_diff",
    "sync_state",
]
