"""The socket's decisions, as a pure function of its state and one message.

docs/protocol.md §3.1 in code: given the channels a socket has joined and an inbound
message, `Multiplexer.decide` says what to do; the socket process does it. No I/O,
no processes: tested with plain values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .message import HEARTBEAT, PHOENIX_TOPIC, PHX_JOIN, PHX_LEAVE, Message


@dataclass(slots=True)
class Joined:
    """A live channel of the socket."""

    topic: str
    pid: Any
    join_ref: Any
    monitor: Any


# -- decisions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyHeartbeat:
    """Answer ``ok {}`` on topic ``phoenix`` with join_ref null."""


@dataclass(frozen=True, slots=True)
class ReplyUnmatched:
    """Answer ``error {"reason": "unmatched topic"}`` with join_ref null."""


@dataclass(frozen=True, slots=True)
class ReplyLeaveNotJoined:
    """A leave for a topic that is not joined: answer ``ok {}``, join_ref echoed."""


@dataclass(frozen=True, slots=True)
class ReplyTooMany:
    """Refuse the join: ``error {"reason": "too many channels joined"}``."""


@dataclass(frozen=True, slots=True)
class Join:
    """Start ``channel`` (what the route gave) for the topic; ``replace`` is the live
    channel a duplicate join replaces (stop it first, ``phx_close`` it after the reply)."""

    channel: Any
    replace: Joined | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    """Hand the message to the joined channel."""

    channel: Joined


@dataclass(frozen=True, slots=True)
class Drop:
    """Ignore the message (stale join_ref, or a leave that raced a server close)."""

    why: str


Decision = ReplyHeartbeat | ReplyUnmatched | ReplyLeaveNotJoined | ReplyTooMany | Join | Forward | Drop


def _no_routes(topic: str) -> None:
    return None


class Multiplexer:
    """The channels of one socket, by topic and by monitor ref.

    ``route(topic)`` gives what to start for a topic (a channel class) or None
    ("unmatched topic"); it is only consulted for joins, so the routes are not
    matched again for every message of a joined channel.
    """

    __slots__ = ("by_monitor", "by_topic", "max_channels", "route")

    def __init__(self, max_channels: int = 100, route: Callable[[str], Any] = _no_routes) -> None:
        self.max_channels = max_channels
        self.route = route
        self.by_topic: dict[str, Joined] = {}
        self.by_monitor: dict[Any, Joined] = {}

    def __len__(self) -> int:
        return len(self.by_topic)

    def add(self, joined: Joined) -> None:
        self.by_topic[joined.topic] = joined
        self.by_monitor[joined.monitor] = joined

    def remove(self, joined: Joined) -> None:
        if self.by_topic.get(joined.topic) is joined:
            del self.by_topic[joined.topic]
        self.by_monitor.pop(joined.monitor, None)

    def decide(self, message: Message) -> Decision:
        """What to do with ``message`` (docs/protocol.md §3.1, Phoenix 1.8.12)."""
        topic = message.topic
        event = message.event
        joined = self.by_topic.get(topic)
        if event == PHX_JOIN:
            channel = self.route(topic)
            if channel is None:
                return ReplyUnmatched()
            if joined is not None:
                # The old channel goes first, so the limit counts the new one in its place.
                return Join(channel, replace=joined)
            if len(self.by_topic) >= self.max_channels:
                return ReplyTooMany()
            return Join(channel)
        if topic == PHOENIX_TOPIC and event == HEARTBEAT:
            return ReplyHeartbeat()
        if joined is None:
            return ReplyLeaveNotJoined() if event == PHX_LEAVE else ReplyUnmatched()
        # Phoenix 1.8.12: a null join_ref is accepted; any other mismatch is stale.
        if message.join_ref is None or message.join_ref == joined.join_ref:
            return Forward(joined)
        if event == PHX_LEAVE:
            return Drop("leave for an older join")
        return Drop("stale join_ref")
