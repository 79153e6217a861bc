"""A short history per room, kept on each node so a (re)join can show recent messages.

`RoomHistory` is the pure, bounded store: ``history`` messages per room (the oldest
go first) for at most ``rooms`` rooms (the least recently used room goes first, and
its topic is returned so the owner can stop listening to it). `HistoryServer` is the
process around it: asked for a room's history, it subscribes to the room's topic, so
every later ``new_msg`` broadcast, from any node of the cluster, lands in the store.
A node that restarts starts empty and learns from then on: it is a convenience, not
a log.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

from ...actors import GenServer, Reply
from ...channels import Broadcast, Endpoint
from ...channels.message import Encoded

NEW_MSG = "new_msg"


class RoomHistory:
    """The last ``history`` messages of at most ``rooms`` rooms (pure, bounded)."""

    def __init__(self, history: int, rooms: int) -> None:
        self.history = history
        self.rooms = rooms
        self._rooms: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()

    def __contains__(self, topic: str) -> bool:
        return topic in self._rooms

    def open(self, topic: str) -> str | None:
        """Start keeping ``topic`` (or mark it recently used); returns the topic dropped
        to stay within ``rooms``, if any."""
        if topic in self._rooms:
            self._rooms.move_to_end(topic)
            return None
        self._rooms[topic] = deque(maxlen=self.history)
        if len(self._rooms) > self.rooms:
            dropped, _ = self._rooms.popitem(last=False)
            return dropped
        return None

    def add(self, topic: str, message: dict[str, Any]) -> None:
        """Keep ``message`` in an open room (a closed room's messages are ignored)."""
        kept = self._rooms.get(topic)
        if kept is not None:
            kept.append(message)

    def get(self, topic: str) -> list[dict[str, Any]]:
        """The room's messages, oldest first (empty for a room not kept)."""
        return list(self._rooms.get(topic, ()))


class HistoryServer(GenServer):
    """One per node: serves ``("history", topic)`` calls with the room's messages,
    oldest first, and keeps listening to that room from then on."""

    async def init(self, endpoint: Endpoint, history: int, rooms: int) -> None:
        self.pubsub = endpoint.pubsub  # started before this server (see ChatEndpoint)
        self.store = RoomHistory(history, rooms)

    async def handle_call(self, request: Any, from_: Any) -> Reply:
        match request:
            case ("history", str(topic)):
                if topic not in self.store:
                    self.pubsub.subscribe(self.pid, topic)
                dropped = self.store.open(topic)
                if dropped is not None:
                    self.pubsub.unsubscribe(self.pid, dropped)
                return Reply(self.store.get(topic))
        raise ValueError(f"HistoryServer does not serve {request!r}; expected ('history', topic)")

    async def handle_info(self, message: Any) -> None:
        if type(message) is Broadcast and message.event == NEW_MSG:
            payload = message.payload
            if type(payload) is Encoded:
                payload = payload.decoded()
            if isinstance(payload, dict):
                self.store.add(message.topic, payload)
