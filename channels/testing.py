"""Channel tests without a network: the equivalent of Phoenix.ChannelTest.

The test process plays the client. `connect` runs the socket's ``connect`` in a real
socket process whose connection is a `TestConn`: every frame the socket, its
channels or PubSub's fastlane write reaches the test process as the typed message
it encodes (`Reply` or `Message`), so assertions compare values, not JSON. Run it
inside a process (the ``run`` fixture, or ``Node.run``)::

    async def main():
        await start_endpoint(app)
        client = await connect(app, UserSocket, {"user_id": "u1"})
        assert await client.join("room:lobby") == ("ok", {"joined": "lobby"})
        ref = client.push("room:lobby", "ping", {"n": 1})
        await client.assert_reply(ref, "ok", {"n": 1})
        client.push("room:lobby", "shout", {"hi": 1})
        await client.assert_broadcast("room:lobby", "shout", {"hi": 1})
        await client.assert_push("room:lobby", "shout", {"hi": 1})

Every assertion waits at most ``timeout`` seconds (default `DEFAULT_TIMEOUT`) for a
matching message and raises `AssertionError` saying what did arrive.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from ..actors import Node, Pid, ReceiveTimeout, start_child
from ..actors.lowlevel import current_process
from ..transports.base import (
    CLOSE_NORMAL,
    Accepted,
    Conn,
    ConnectInfo,
    Inbound,
    Refused,
    TransportClosed,
)
from ._socket_server import run_socket
from .endpoint import Endpoint
from .message import PHX_JOIN, PHX_LEAVE, Broadcast, Encoded, Frame, Message, Reply
from .serializer import Serializer
from .socket import Socket

DEFAULT_TIMEOUT = 1.0
"""Seconds an assertion waits (Phoenix's ``assert_receive`` waits 100 ms; we are
generous because tests run in asyncio debug mode)."""


class _TestFrame(Frame):
    __slots__ = ("message",)

    def __init__(self, message: Message | Reply) -> None:
        super().__init__(b"", binary=False)
        self.message = message


class TestSerializer(Serializer):
    """Hands typed messages through untouched (Phoenix's NoopSerializer): the test
    client parks each message here and sends its key as the frame."""

    __test__ = False  # not a pytest test class, whatever its name

    vsn = "test"
    supports_binary = True

    def __init__(self) -> None:
        self.pending: dict[bytes, Message] = {}
        self._keys = itertools.count(1)

    def park(self, message: Message) -> bytes:
        key = str(next(self._keys)).encode()
        self.pending[key] = message
        return key

    def decode(self, data: bytes, binary: bool = False) -> Message:
        return self.pending.pop(data)

    def encode_reply(self, reply: Reply) -> Frame:
        return _TestFrame(reply)

    def encode_push(self, message: Message) -> Frame:
        if type(message.payload) is Encoded:
            message = dataclasses.replace(message, payload=message.payload.decoded())
        return _TestFrame(message)

    def fastlane(self, broadcast: Broadcast) -> Frame:
        payload = broadcast.payload
        if type(payload) is Encoded:
            payload = payload.decoded()
        return _TestFrame(Message(broadcast.topic, broadcast.event, payload))


class TestConn(Conn):
    """A connection whose frames go to a test process as typed messages."""

    __test__ = False  # not a pytest test class, whatever its name

    transport = "test"

    def __init__(self, node: Node, client: Pid) -> None:
        self.node = node
        self.client = client
        self._closed = False
        self.close_code: int | None = None

    def write(self, frame: Frame) -> None:
        if not self._closed and isinstance(frame, _TestFrame):
            self.node.send(self.client, frame.message)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if not self._closed:
            self._closed = True
            self.close_code = code
            self.node.send(self.client, TransportClosed(reason, code))

    @property
    def closed(self) -> bool:
        return self._closed

    def supports_binary(self) -> bool:
        return True


async def start_endpoint(endpoint: Endpoint) -> Pid:
    """Start ``endpoint``'s tree (PubSub and supervisors, no listener) on this node."""
    me = current_process()
    pid = await start_child(me.node.root, endpoint.child_spec())
    assert pid is not None
    return pid


async def connect(
    endpoint: Endpoint,
    socket: type[Socket],
    params: dict[str, Any] | None = None,
    connect_info: ConnectInfo | None = None,
) -> TestClient:
    """Connect to ``endpoint`` as a client of ``socket``; raises `AssertionError` if
    ``connect`` refuses."""
    me = current_process()
    node = me.node
    conn = TestConn(node, me.pid)
    serializer = TestSerializer()
    ref = node.make_ref()
    node.spawn_process(
        run_socket,
        (
            endpoint,
            socket,
            conn,
            serializer,
            dict(params or {}),
            connect_info or ConnectInfo(transport="test"),
            lambda outcome: node.send(me.pid, (ref, outcome)),
        ),
    )
    _, outcome = await me.receive(lambda m: type(m) is tuple and len(m) == 2 and m[0] == ref)
    if isinstance(outcome, Refused):
        raise AssertionError(f"{socket.__qualname__}.connect refused the connection ({outcome.reason})")
    assert isinstance(outcome, Accepted)
    return TestClient(endpoint, outcome.pid, conn, serializer)


class TestClient:
    """The client side of a test connection; see the module docstring."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, endpoint: Endpoint, socket_pid: Pid, conn: TestConn, serializer: TestSerializer) -> None:
        self.endpoint = endpoint
        self.socket_pid = socket_pid
        self.conn = conn
        self.serializer = serializer
        self._refs = itertools.count(1)
        self.join_refs: dict[str, str] = {}

    def _ref(self) -> str:
        return str(next(self._refs))

    def send(self, message: Message) -> None:
        """Deliver a raw message to the socket, as if the client had sent it."""
        current_process().node.send(self.socket_pid, Inbound(self.serializer.park(message)))

    async def join(self, topic: str, payload: Any = None, timeout: float = DEFAULT_TIMEOUT) -> tuple[str, Any]:
        """Join ``topic`` (and subscribe the test process to it, for `assert_broadcast`);
        returns the join reply's ``(status, payload)``."""
        ref = self._ref()
        self.join_refs[topic] = ref
        pubsub = self.endpoint.pubsub
        me = current_process().pid
        if me not in pubsub.subscribers(topic):  # a rejoin must not deliver broadcasts twice
            pubsub.subscribe(me, topic)
        self.send(Message(topic, PHX_JOIN, {} if payload is None else payload, ref, ref))
        reply = await self.assert_reply(ref, timeout=timeout)
        return reply.status, reply.payload

    def push(self, topic: str, event: str, payload: Any = None) -> str:
        """Push ``event`` on a joined topic; returns the ref to pass to `assert_reply`."""
        ref = self._ref()
        self.send(Message(topic, event, {} if payload is None else payload, ref, self.join_refs.get(topic)))
        return ref

    async def leave(self, topic: str, timeout: float = DEFAULT_TIMEOUT) -> Reply:
        ref = self._ref()
        self.send(Message(topic, PHX_LEAVE, {}, ref, self.join_refs.get(topic)))
        return await self.assert_reply(ref, timeout=timeout)

    def close(self) -> None:
        """Close the connection, as a client going away: frames written after this
        are dropped, as on a real connection."""
        self.conn._closed = True
        current_process().node.send(self.socket_pid, TransportClosed("closed by the test"))

    # -- assertions -------------------------------------------------------------------------

    async def assert_reply(
        self, ref: str, status: str | None = None, payload: Any = ..., timeout: float = DEFAULT_TIMEOUT
    ) -> Reply:
        """Wait for the reply to ``ref``; check its status and payload when given."""
        reply: Reply = await _expect(lambda m: type(m) is Reply and m.ref == ref, f"a reply to ref {ref!r}", timeout)
        if status is not None and reply.status != status:
            raise AssertionError(f"reply to {ref!r} has status {reply.status!r}, expected {status!r}: {reply!r}")
        if payload is not ... and reply.payload != payload:
            raise AssertionError(f"reply to {ref!r} has payload {reply.payload!r}, expected {payload!r}")
        return reply

    async def assert_push(
        self, topic: str, event: str, payload: Any = ..., timeout: float = DEFAULT_TIMEOUT
    ) -> Message:
        """Wait for ``event`` pushed (or broadcast) to this client on ``topic``."""
        message: Message = await _expect(
            lambda m: (
                type(m) is Message
                and m.topic == topic
                and m.event == event
                and (payload is ... or m.payload == payload)
            ),
            f"push {event!r} on {topic!r}" + ("" if payload is ... else f" with {payload!r}"),
            timeout,
        )
        return message

    async def assert_broadcast(
        self, topic: str, event: str, payload: Any = ..., timeout: float = DEFAULT_TIMEOUT
    ) -> Broadcast:
        """Wait for a broadcast of ``event`` on ``topic`` (the test process subscribed at join)."""
        broadcast: Broadcast = await _expect(
            lambda m: (
                type(m) is Broadcast
                and m.topic == topic
                and m.event == event
                and (payload is ... or m.payload == payload)
            ),
            f"broadcast {event!r} on {topic!r}",
            timeout,
        )
        return broadcast

    async def refute_push(self, topic: str, event: str, timeout: float = 0.1) -> None:
        """Fail if ``event`` is pushed on ``topic`` within ``timeout`` seconds."""
        found = await current_process().receive(
            lambda m: type(m) is Message and m.topic == topic and m.event == event, timeout, None
        )
        if found is not None:
            raise AssertionError(f"unexpected push: {found!r}")

    async def assert_closed(self, timeout: float = DEFAULT_TIMEOUT) -> TransportClosed:
        """Wait until the server closes this connection."""
        closed: TransportClosed = await _expect(
            lambda m: type(m) is TransportClosed, "the connection to close", timeout
        )
        return closed


async def _expect(match: Any, what: str, timeout: float) -> Any:
    me = current_process()
    try:
        return await me.receive(match, timeout)
    except ReceiveTimeout:
        queued = me.messages()
        raise AssertionError(f"expected {what} within {timeout} s; mailbox has {queued!r}") from None
