"""PubSub: topic subscriptions and broadcasts, with fastlane delivery to sockets.

`PubSub` is owned by a node (no global state) and served by one process that
watches subscribers and forgets them when they exit. Subscribing and broadcasting
are plain function calls made by the caller, as with Phoenix's Registry: the
broadcast is dispatched in the caller's process, with no hop through a server.

A subscriber subscribes either plainly (it receives a `Broadcast` message) or with
a `Fastlane`: the socket's connection, its serializer and the channel's
intercepted events. A fastlane subscriber does not get a message at all: the
broadcast is encoded once per serializer for the whole dispatch, and the same
`Frame` is written straight to every subscriber's connection (Phoenix's
``fastlane!``). Events the channel intercepts still go to the channel process so
that ``handle_out`` can filter or rewrite them per socket.

Cluster-wide delivery goes through an `Adapter`: `broadcast` asks the adapter to
forward the broadcast to every other node once, then dispatches locally; the other
nodes dispatch it locally there. The local adapter has no other nodes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..actors import Down, Pid
from ..actors.lowlevel import Process, current_process
from ..telemetry import PUBSUB_BROADCAST
from .errors import ChannelError
from .message import Broadcast, Frame

if TYPE_CHECKING:
    from ..actors import Node
    from ..transports.base import Conn
    from .serializer import Serializer

log = logging.getLogger("alight.channels.pubsub")


@dataclass(frozen=True, slots=True)
class Fastlane:
    """How to write a broadcast straight to a socket's connection."""

    conn: Conn
    serializer: Serializer
    intercepts: frozenset[str] = frozenset()
    write: Callable[[Frame], None] = field(init=False, repr=False, compare=False)
    """``conn.write``, bound once: the dispatch loop calls it for every subscriber."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "write", self.conn.write)


class Adapter(Protocol):
    """How broadcasts reach other nodes (the cluster package implements it)."""

    def forward(self, topic: str, message: Any, from_pid: Pid | None) -> None:
        """Deliver ``message`` to every other node once; they dispatch it locally."""

    def direct(self, node_name: str, topic: str, message: Any) -> None:
        """Deliver ``message`` to ``node_name`` only."""


class LocalAdapter:
    """The adapter of a node alone: there is nothing to forward to."""

    def forward(self, topic: str, message: Any, from_pid: Pid | None) -> None:
        return None

    def direct(self, node_name: str, topic: str, message: Any) -> None:
        return None


@dataclass(slots=True)
class PubSubStats:
    """Counters, for the dashboard and for tests."""

    broadcasts: int = 0
    deliveries: int = 0
    fastlane_writes: int = 0
    encode_errors: int = 0


class PubSub:
    """Subscriptions of one node. Start its process with `start` (the endpoint does)."""

    def __init__(self, node: Node, name: str = "alight.pubsub", adapter: Adapter | None = None) -> None:
        self.node = node
        self.name = name
        self.adapter: Adapter = adapter if adapter is not None else LocalAdapter()
        self.stats = PubSubStats()
        # topic -> subscriber -> one entry per subscription (usually one).
        self._topics: dict[str, dict[Pid, tuple[Fastlane | None, ...]]] = {}
        # pid -> its topics; a list, not a set: a subscriber has one or two topics and
        # an empty set costs 216 bytes (per connection, with thousands of them).
        self._by_pid: dict[Pid, list[str]] = {}
        self._watcher: Process | None = None
        self._telemetry = node.telemetry

    # -- the process that forgets exited subscribers ------------------------------

    async def run(self) -> None:
        """The body of the PubSub process: remove subscribers when they exit."""
        me = current_process()
        self._watcher = me
        for pid in list(self._by_pid):
            self.node.monitor(me, pid)
        send = self.node.send
        try:
            while True:
                message = await me.receive()
                kind = type(message)
                if kind is Down:
                    self._forget(message.pid)
                elif kind is _Sync:
                    send(message.reply_to, message)
                # Anything else was sent here by mistake: dropped.
        finally:
            self._watcher = None

    @property
    def pid(self) -> Pid | None:
        """The PubSub process, or None when it is not running."""
        watcher = self._watcher
        return None if watcher is None else watcher.pid

    async def sync(self, timeout: float | None = None) -> None:
        """Wait until the PubSub process has handled every message sent to it before
        this call, e.g. the `Down` of a subscriber that exited (so `subscribers` no
        longer lists it). Call it from a process; returns at once if the PubSub
        process is not running. Raises `ReceiveTimeout` after ``timeout`` seconds."""
        pid = self.pid
        if pid is None:
            return
        me = current_process()
        ref = self.node.make_ref()
        self.node.send(pid, _Sync(me.pid, ref))
        await me.receive(lambda m: type(m) is _Sync and m.ref == ref, timeout)

    def _forget(self, pid: Pid) -> None:
        for topic in self._by_pid.pop(pid, ()):
            subs = self._topics.get(topic)
            if subs is not None:
                subs.pop(pid, None)
                if not subs:
                    del self._topics[topic]

    # -- subscriptions --------------------------------------------------------------

    def subscribe(self, pid: Pid, topic: str, fastlane: Fastlane | None = None) -> None:
        """Subscribe ``pid`` to ``topic``. Subscribing twice delivers twice (as in
        Phoenix); `unsubscribe` removes every subscription of ``pid`` to ``topic``."""
        if not isinstance(topic, str):
            raise ChannelError(f"topic must be a str, not {topic!r}")
        subs = self._topics.get(topic)
        if subs is None:
            subs = self._topics[topic] = {}
        subs[pid] = (*subs.get(pid, ()), fastlane)
        topics = self._by_pid.get(pid)
        if topics is None:
            self._by_pid[pid] = [topic]
            if self._watcher is not None:
                self.node.monitor(self._watcher, pid)
        elif topic not in topics:
            topics.append(topic)

    def unsubscribe(self, pid: Pid, topic: str) -> None:
        subs = self._topics.get(topic)
        if subs is not None:
            subs.pop(pid, None)
            if not subs:
                del self._topics[topic]
        topics = self._by_pid.get(pid)
        if topics is not None and topic in topics:
            topics.remove(topic)

    def subscribers(self, topic: str) -> list[Pid]:
        """The pids subscribed to ``topic`` on this node (once each)."""
        return list(self._topics.get(topic, ()))

    def topics(self) -> list[str]:
        return list(self._topics)

    def subscriber_count(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    # -- broadcasts ---------------------------------------------------------------

    def broadcast(self, topic: str, message: Any, from_pid: Pid | None = None) -> None:
        """Deliver ``message`` to every subscriber of ``topic`` on every node, except
        ``from_pid`` (on this node). A `Broadcast` message uses the fastlane."""
        self.adapter.forward(topic, message, from_pid)
        self.local_broadcast(topic, message, from_pid)

    def direct_broadcast(self, node_name: str, topic: str, message: Any) -> None:
        """Deliver ``message`` to the subscribers of ``topic`` on ``node_name`` only."""
        if node_name == self.node.name:
            self.local_broadcast(topic, message)
        else:
            self.adapter.direct(node_name, topic, message)

    def local_broadcast(self, topic: str, message: Any, from_pid: Pid | None = None) -> None:
        """Dispatch on this node only (what a forwarded broadcast does on arrival).
        Emits `PUBSUB_BROADCAST` once per dispatch when someone listens."""
        subs = self._topics.get(topic)
        if not subs:
            if self._telemetry.has_handlers(PUBSUB_BROADCAST):
                self._broadcast_event(topic, message, 0)
            return
        stats = self.stats
        stats.broadcasts += 1
        send = self.node.send
        fastlane = type(message) is Broadcast
        event = message.event if fastlane else None
        frames: dict[Any, Frame | None] = {}
        # The last serializer's frame, to skip the cache lookup: a topic's subscribers
        # almost always share one serializer.
        last_serializer: Any = None
        last_frame: Frame | None = None
        writes = 0
        sends = 0
        for pid, lanes in subs.items():
            # `from_pid is not None` first: comparing a Pid with None is two calls.
            if from_pid is not None and pid == from_pid:
                continue
            for lane in lanes:
                if lane is None or not fastlane or event in lane.intercepts:
                    send(pid, message)
                    sends += 1
                    continue
                serializer = lane.serializer
                if serializer is last_serializer:
                    frame = last_frame
                else:
                    frame = frames.get(serializer, _MISSING)
                    if frame is _MISSING:
                        frame = frames[serializer] = self._encode(serializer, message)
                    last_serializer, last_frame = serializer, frame
                if frame is not None:
                    lane.write(frame)
                    writes += 1
        stats.deliveries += sends
        stats.fastlane_writes += writes
        if self._telemetry.has_handlers(PUBSUB_BROADCAST):
            self._broadcast_event(topic, message, sends + writes)

    def _broadcast_event(self, topic: str, message: Any, deliveries: int) -> None:
        metadata = {"pubsub": self, "topic": topic, "event": message.event if type(message) is Broadcast else None}
        self._telemetry.execute(PUBSUB_BROADCAST, {"local_deliveries": deliveries}, metadata)

    def _encode(self, serializer: Serializer, message: Broadcast) -> Frame | None:
        try:
            return serializer.fastlane(message)
        except ChannelError as error:
            # e.g. a binary broadcast for a V1 socket: those subscribers miss it.
            self.stats.encode_errors += 1
            log.warning("cannot encode broadcast %r on %r for %s: %s", message.event, message.topic, serializer, error)
            return None


_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class _Sync:
    """`PubSub.sync`'s request, echoed back once the PubSub process reaches it."""

    reply_to: Pid
    ref: Any
