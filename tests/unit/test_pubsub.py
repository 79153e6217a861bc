"""PubSub: subscriptions, broadcasts and the fastlane (docs/protocol.md §4.5)."""

from __future__ import annotations

from typing import Any

from testkit import UNIT, Runner

from alight.actors import Down, Pid, current_node, monitor, receive, self_pid, send, spawn
from alight.channels.message import Broadcast, Frame, Message, Reply
from alight.channels.pubsub import Fastlane, PubSub
from alight.channels.serializer import Serializer, V1Serializer, V2Serializer
from alight.transports.base import CLOSE_NORMAL, Conn

SHORT = 0.05 * UNIT
WAIT = 1.0 * UNIT


class CountingSerializer(Serializer):
    """Encodes a broadcast as its event name and counts how often it was asked to."""

    vsn = "counting"

    def __init__(self) -> None:
        self.encodes = 0

    def decode(self, data: bytes, binary: bool = False) -> Message:
        raise NotImplementedError

    def encode_reply(self, reply: Reply) -> Frame:
        raise NotImplementedError

    def encode_push(self, message: Message) -> Frame:
        raise NotImplementedError

    def fastlane(self, broadcast: Broadcast) -> Frame:
        self.encodes += 1
        return Frame(broadcast.event.encode())


class RecordingConn(Conn):
    transport = "websocket"

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def write(self, frame: Frame) -> None:
        self.frames.append(frame)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


def start_pubsub() -> PubSub:
    pubsub = PubSub(current_node())
    spawn(pubsub.run)
    return pubsub


async def nothing_more() -> None:
    """Nothing else arrives (a short wait: absence cannot be awaited)."""
    extra = await receive(None, SHORT, None)
    assert extra is None, f"unexpected message {extra!r}"


async def collector(parent: Pid, topic: str, pubsub: PubSub) -> None:
    """Subscribes itself, says so, then forwards what it receives until ``"stop"``."""
    pubsub.subscribe(self_pid(), topic)
    send(parent, ("subscribed", self_pid()))
    while True:
        message = await receive()
        if message == "stop":
            return
        send(parent, ("got", self_pid(), message))


async def start_collector(pubsub: PubSub, topic: str) -> Pid:
    pid = spawn(collector, self_pid(), topic, pubsub)
    await receive(lambda m: m == ("subscribed", pid), WAIT)
    return pid


# -- subscriptions ------------------------------------------------------------------


def test_subscribe_broadcast_unsubscribe(run: Runner) -> None:
    async def main() -> None:
        pubsub = start_pubsub()
        me = self_pid()
        pubsub.subscribe(me, "room:1")
        assert pubsub.subscribers("room:1") == [me]
        assert pubsub.topics() == ["room:1"]
        message = Broadcast("room:1", "hi", {"n": 1})
        pubsub.broadcast("room:1", message)
        assert await receive(None, WAIT) is message
        pubsub.broadcast("room:2", Broadcast("room:2", "other", {}))  # no subscribers
        pubsub.unsubscribe(me, "room:1")
        assert pubsub.subscribers("room:1") == []
        assert pubsub.topics() == []
        pubsub.broadcast("room:1", message)
        await nothing_more()
        assert pubsub.stats.deliveries == 1

    run(main)


def test_duplicate_subscription_delivers_twice_and_unsubscribe_removes_both(run: Runner) -> None:
    async def main() -> None:
        pubsub = start_pubsub()
        me = self_pid()
        pubsub.subscribe(me, "t")
        pubsub.subscribe(me, "t")
        assert pubsub.subscribers("t") == [me]
        assert pubsub.subscriber_count("t") == 1
        pubsub.broadcast("t", Broadcast("t", "e", {}))
        assert type(await receive(None, WAIT)) is Broadcast
        assert type(await receive(None, WAIT)) is Broadcast
        await nothing_more()
        pubsub.unsubscribe(me, "t")
        pubsub.broadcast("t", Broadcast("t", "e", {}))
        await nothing_more()

    run(main)


def test_broadcast_from_excludes_the_sender(run: Runner) -> None:
    async def main() -> None:
        pubsub = start_pubsub()
        me = self_pid()
        pubsub.subscribe(me, "t")
        other = await start_collector(pubsub, "t")
        message = Broadcast("t", "e", {"x": 1})
        pubsub.broadcast("t", message, me)
        assert await receive(None, WAIT) == ("got", other, message)
        await nothing_more()
        # local_broadcast honours from_pid too.
        pubsub.local_broadcast("t", message, other)
        assert await receive(None, WAIT) is message
        await nothing_more()

    run(main)


def test_non_broadcast_messages_are_delivered_as_is(run: Runner) -> None:
    async def main() -> None:
        pubsub = start_pubsub()
        me = self_pid()
        conn = RecordingConn()
        serializer = CountingSerializer()
        pubsub.subscribe(me, "t")
        # Even a fastlane subscriber gets a non-Broadcast term as a message.
        pubsub.subscribe(me, "t", Fastlane(conn, serializer))
        pubsub.broadcast("t", ("presence_diff", {"joins": {}}))
        assert await receive(None, WAIT) == ("presence_diff", {"joins": {}})
        assert await receive(None, WAIT) == ("presence_diff", {"joins": {}})
        assert serializer.encodes == 0
        assert conn.frames == []

    run(main)


def test_exited_subscribers_are_forgotten(run: Runner) -> None:
    async def main() -> None:
        pubsub = start_pubsub()
        await pubsub.sync(WAIT)  # the PubSub process is up and monitoring
        pid = await start_collector(pubsub, "a")
        pubsub.subscribe(pid, "b")
        assert pubsub.subscribers("a") == [pid]
        ref = monitor(pid)
        send(pid, "stop")
        down = await receive(lambda m: type(m) is Down and m.ref == ref, WAIT)
        assert down.reason == "normal"
        await pubsub.sync(WAIT)
        assert pubsub.subscribers("a") == []
        assert pubsub.subscribers("b") == []
        assert pubsub.topics() == []

    run(main)


def test_subscribers_before_the_process_starts_are_watched_too(run: Runner) -> None:
    async def main() -> None:
        pubsub = PubSub(current_node())
        pid = await start_collector(pubsub, "a")
        spawn(pubsub.run)
        ref = monitor(pid)
        send(pid, "stop")
        await receive(lambda m: type(m) is Down and m.ref == ref, WAIT)
        await pubsub.sync(WAIT)
        assert pubsub.subscribers("a") == []

    run(main)


# -- fastlane -------------------------------------------------------------------------


def test_fastlane_encodes_once_per_serializer_per_dispatch(run: Runner) -> None:
    async def main() -> None:
        pubsub = start_pubsub()
        first, second = CountingSerializer(), CountingSerializer()
        conns = [RecordingConn() for _ in range(10)]
        for i, conn in enumerate(conns):
            # Fastlane subscribers are channel processes; any live pid will do.
            pid = spawn(receive)
            pubsub.subscribe(pid, "t", Fastlane(conn, first if i < 7 else second))
        pubsub.broadcast("t", Broadcast("t", "e", {"n": 1}))
        assert (first.encodes, second.encodes) == (1, 1)
        assert all(len(conn.frames) == 1 for conn in conns)
        # Every subscriber of one serializer gets the very same frame object.
        assert len({id(conn.frames[0]) for conn in conns[:7]}) == 1
        assert len({id(conn.frames[0]) for conn in conns[7:]}) == 1
        assert conns[0].frames[0].data == b"e"
        assert pubsub.stats.fastlane_writes == 10
        assert pubsub.stats.deliveries == 0
        # Next dispatch: encoded again, once.
        pubsub.broadcast("t", Broadcast("t", "f", {}))
        assert (first.encodes, second.encodes) == (2, 2)

    run(main)


def test_intercepted_events_go_to_the_channel_process(run: Runner) -> None:
    async def main() -> None:
        pubsub = start_pubsub()
        me = self_pid()
        conn = RecordingConn()
        serializer = CountingSerializer()
        pubsub.subscribe(me, "t", Fastlane(conn, serializer, frozenset({"secret"})))
        secret = Broadcast("t", "secret", {"s": 1})
        pubsub.broadcast("t", secret)
        assert await receive(None, WAIT) is secret
        assert conn.frames == []
        assert serializer.encodes == 0
        pubsub.broadcast("t", Broadcast("t", "open", {}))
        assert [f.data for f in conn.frames] == [b"open"]
        await nothing_more()

    run(main)


def test_fastlane_excludes_broadcast_from_sender(run: Runner) -> None:
    async def main() -> None:
        pubsub = start_pubsub()
        me = self_pid()
        mine, theirs = RecordingConn(), RecordingConn()
        serializer = CountingSerializer()
        pubsub.subscribe(me, "t", Fastlane(mine, serializer))
        pubsub.subscribe(spawn(receive), "t", Fastlane(theirs, serializer))
        pubsub.broadcast("t", Broadcast("t", "e", {}), me)
        assert mine.frames == []
        assert len(theirs.frames) == 1

    run(main)


def test_binary_broadcast_skips_v1_subscribers_only(run: Runner) -> None:
    async def main() -> None:
        pubsub = start_pubsub()
        v1, v2 = V1Serializer(), V2Serializer()
        v1_conns = [RecordingConn() for _ in range(3)]
        v2_conns = [RecordingConn() for _ in range(2)]
        for conn in v1_conns:
            pubsub.subscribe(spawn(receive), "t", Fastlane(conn, v1))
        for conn in v2_conns:
            pubsub.subscribe(spawn(receive), "t", Fastlane(conn, v2))
        pubsub.broadcast("t", Broadcast("t", "bin", b"\x00\x01\x02"))
        assert all(conn.frames == [] for conn in v1_conns)
        assert all(len(conn.frames) == 1 and conn.frames[0].binary for conn in v2_conns)
        assert v2_conns[0].frames[0].data.endswith(b"\x00\x01\x02")
        # One failed encode for the whole dispatch, counted once.
        assert pubsub.stats.encode_errors == 1
        assert pubsub.stats.fastlane_writes == 2
        # A JSON broadcast still reaches everyone afterwards.
        pubsub.broadcast("t", Broadcast("t", "json", {"ok": True}))
        assert all(len(conn.frames) == 1 for conn in v1_conns)
        assert all(len(conn.frames) == 2 for conn in v2_conns)

    run(main)


def test_direct_broadcast_to_this_node_dispatches_locally(run: Runner) -> None:
    async def main() -> None:
        pubsub = start_pubsub()
        pubsub.subscribe(self_pid(), "t")
        message: Any = Broadcast("t", "e", {})
        pubsub.direct_broadcast(current_node().name, "t", message)
        assert await receive(None, WAIT) is message
        pubsub.direct_broadcast("elsewhere@nowhere", "t", message)  # local adapter: nowhere to go
        await nothing_more()

    run(main)
