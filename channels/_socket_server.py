"""The socket process: one per connection, whatever the transport.

It runs ``Socket.connect`` and ``id`` before the transport accepts the connection,
then decodes every client frame and does what the `Multiplexer` decides: answer
heartbeats and unmatched topics itself, start channel processes under the
endpoint's channel supervisor and wait for their join (a join blocks the socket,
as in Phoenix), forward other messages to the channel of their topic. It monitors
its channels: an orderly stop becomes ``phx_close``, anything else ``phx_error``.
A ``disconnect`` broadcast on the socket id closes the connection (1001).

A frame that cannot be decoded ends the socket with close code 1011, as it does in
Phoenix (where the socket process crashes); the client reconnects. A frame that
decodes but breaks a limit of the serializer (`MessageRefused`: a payload nested too
deep, an event name too long) gets an error reply instead, and the socket stays up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..actors import ChildSpec, Down, DynamicSupervisor, ExitProcess, safe_repr, spawn_link
from ..actors.lowlevel import Process, current_process
from ..actors.messages import is_normal
from ..telemetry import SOCKET_CONNECTED
from ..transports.base import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    Accepted,
    Conn,
    ConnectInfo,
    Inbound,
    Refused,
    Sync,
    Synced,
    TransportClosed,
)
from ._channel_server import JoinOutcome, run_channel
from ._multiplexer import (
    Drop,
    Forward,
    Join,
    Joined,
    Multiplexer,
    ReplyHeartbeat,
    ReplyLeaveNotJoined,
    ReplyTooMany,
    ReplyUnmatched,
)
from .channel import Channel, ChannelContext
from .errors import ChannelError, MessageRefused
from .message import PHX_CLOSE, PHX_ERROR, Broadcast, Message, Reply

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .serializer import Serializer
    from .socket import Socket

log = logging.getLogger("alight.channels.socket")


def took(seconds: float) -> str:
    """A duration as Phoenix's logger prints it: ``30µs`` below a millisecond, else ``1.2ms``."""
    return f"{seconds * 1e6:.0f}µs" if seconds < 1e-3 else f"{seconds * 1e3:.1f}ms"


DUPLICATE_JOIN_GRACE = 5.0
"""Seconds a replaced channel gets to stop before it is killed (Phoenix: 5 000 ms)."""

DISCONNECT = "disconnect"


def run_socket(
    endpoint: Endpoint,
    socket_cls: type[Socket],
    conn: Conn,
    serializer: Serializer,
    params: dict[str, Any],
    connect_info: ConnectInfo,
    on_result: Callable[[Accepted | Refused], None],
    subprotocol: str | None = None,
) -> Coroutine[Any, Any, None]:
    """The body of a socket process: ``connect``, then serve the connection.

    A plain function returning the server's coroutine, so that an idle socket
    process keeps one coroutine frame fewer (thousands of them idle at once).
    """
    server = _SocketServer(current_process(), endpoint, socket_cls(endpoint, conn.transport), conn, serializer)
    return server.run(params, connect_info, on_result, subprotocol)


class _SocketServer:
    def __init__(self, me: Process, endpoint: Endpoint, socket: Socket, conn: Conn, serializer: Serializer) -> None:
        self.me = me
        self.endpoint = endpoint
        self.socket = socket
        self.conn = conn
        self.serializer = serializer
        self.socket_id: str | None = None
        self.channels = Multiplexer(type(socket).max_channels, type(socket).route)

    async def run(
        self,
        params: dict[str, Any],
        connect_info: ConnectInfo,
        on_result: Callable[[Accepted | Refused], None],
        subprotocol: str | None,
    ) -> None:
        me = self.me
        endpoint = self.endpoint
        if not await self.measured_connect(params, connect_info, on_result):
            return
        endpoint.stats.connections += 1
        on_result(Accepted(me.pid, subprotocol))
        # Connected: what only connect needed (the request's headers in connect_info,
        # the transport's callback) is not held for the connection's life.
        del params, connect_info, on_result
        if self.socket_id is not None:
            endpoint.pubsub.subscribe(me.pid, self.socket_id)
        try:
            while True:
                message = await me.receive()
                kind = type(message)
                if kind is Inbound:
                    try:
                        await self.inbound(message)
                    finally:
                        # A credit back to the transport (its inbound back-pressure).
                        self.conn.inbound_handled()
                elif kind is Down:
                    self.channel_down(message)
                elif kind is TransportClosed:
                    return
                elif kind is Sync:
                    me.node.send(message.reply_to, Synced(message.ref))
                elif kind is Broadcast and message.topic == self.socket_id and message.event == DISCONNECT:
                    self.conn.close(CLOSE_GOING_AWAY, "disconnected")
                    raise ExitProcess(("shutdown", "disconnected"))
                # Anything else (late join outcomes, stray messages) is dropped.
        finally:
            endpoint.stats.connections -= 1

    async def measured_connect(
        self, params: dict[str, Any], connect_info: ConnectInfo, on_result: Callable[[Accepted | Refused], None]
    ) -> bool:
        """`connect`, timed for `SOCKET_CONNECTED`. (Its own frame: the locals are gone
        once connected, not held for the connection's life in `run`'s frame.)"""
        telemetry = self.me.node.telemetry
        started = perf_counter()
        accepted = False
        try:
            accepted = await self.connect(params, connect_info, on_result)
        finally:
            if telemetry.has_handlers(SOCKET_CONNECTED):
                self.connected_event(perf_counter() - started, accepted, params, connect_info)
            level = self.endpoint.log_level
            if level and log.isEnabledFor(level):
                what = "CONNECTED TO" if accepted else "REFUSED CONNECTION TO"
                log.log(
                    level,
                    "%s %s in %s (%s, vsn %s)",
                    what,
                    type(self.socket).__qualname__,
                    took(perf_counter() - started),
                    self.conn.transport,
                    self.serializer.vsn,
                )
        return accepted

    async def connect(
        self, params: dict[str, Any], connect_info: ConnectInfo, on_result: Callable[[Accepted | Refused], None]
    ) -> bool:
        """Run ``Socket.connect`` and ``id``; on refusal, answer ``on_result`` and say so."""
        self.me.callback = "connect"
        socket = self.socket
        name = type(socket).__qualname__
        try:
            accepted = await socket.connect(params, connect_info)
            socket_id = socket.id() if accepted is True else None
        except Exception:
            on_result(Refused("connect crashed", 403))
            raise
        if accepted is not True:
            if accepted is not False:
                log.error("%s.connect returned %r; expected True or False: refusing", name, accepted)
            on_result(Refused("connect refused", 403))
            return False
        if socket_id is not None and not isinstance(socket_id, str):
            log.error("%s.id returned %r; expected a str or None: refusing", name, socket_id)
            on_result(Refused("invalid socket id", 403))
            return False
        self.socket_id = socket_id
        return True

    def connected_event(self, duration: float, accepted: bool, params: dict[str, Any], info: ConnectInfo) -> None:
        """Emit `SOCKET_CONNECTED` (Phoenix's ``[:phoenix, :socket_connected]``)."""
        metadata = {
            "endpoint": self.endpoint,
            "user_socket": type(self.socket),
            "transport": self.conn.transport,
            "vsn": self.serializer.vsn,
            "params": params,
            "connect_info": info,
            "result": "ok" if accepted else "error",
        }
        self.me.node.telemetry.execute(SOCKET_CONNECTED, {"duration": duration}, metadata)

    # -- inbound ----------------------------------------------------------------------

    async def inbound(self, frame: Inbound) -> None:
        try:
            message = self.serializer.decode(frame.data, frame.binary)
        except MessageRefused as refused:
            # Decoded, but over a limit: an error reply, and the socket stays up.
            log.warning("socket %r: refused a message on %r: %s", self.me.pid, refused.topic, refused.reason)
            self.endpoint.stats.refused_messages += 1
            reply = Reply(refused.topic, "error", {"reason": refused.reason}, refused.ref, refused.join_ref)
            self.conn.write(self.serializer.encode_reply(reply))
            return
        except ChannelError as error:
            log.warning("closing socket %r: invalid frame: %s", self.me.pid, error)
            self.endpoint.stats.invalid_frames += 1
            self.conn.close(CLOSE_INTERNAL, "invalid message")
            raise ExitProcess(("shutdown", "invalid_message")) from None
        self.me.last_message = message
        decision = self.channels.decide(message)
        kind = type(decision)
        if kind is Forward:
            assert isinstance(decision, Forward)
            self.me.node.send(decision.channel.pid, message)
        elif kind is ReplyHeartbeat:
            self.reply(message, None, "ok", {})
        elif kind is ReplyUnmatched:
            log.warning("socket %r: ignoring unmatched topic %r (event %r)", self.me.pid, message.topic, message.event)
            self.reply(message, None, "error", {"reason": "unmatched topic"})
        elif kind is ReplyLeaveNotJoined:
            self.reply(message, message.join_ref, "ok", {})
        elif kind is ReplyTooMany:
            log.warning("socket %r: refusing join of %r: too many channels joined", self.me.pid, message.topic)
            self.reply(message, message.join_ref, "error", {"reason": "too many channels joined"})
        elif kind is Join:
            assert isinstance(decision, Join)
            await self.join(message, decision.channel, decision.replace)
        else:
            assert isinstance(decision, Drop)
            log.debug("socket %r dropped %s on %r: %s", self.me.pid, message.event, message.topic, decision.why)

    def reply(self, message: Message, join_ref: Any, status: str, payload: Any) -> None:
        self.conn.write(self.serializer.encode_reply(Reply(message.topic, status, payload, message.ref, join_ref)))

    # -- joins ------------------------------------------------------------------------

    async def join(self, message: Message, channel_cls: type[Channel], replace: Joined | None) -> None:
        if replace is not None:
            await self.replace(replace)
        try:
            await self.start_channel(message, channel_cls)
        finally:
            if replace is not None:
                # Phoenix's order: the new join's reply (whatever it said), then
                # phx_close for the incarnation it replaced.
                self.control(replace, PHX_CLOSE, {})

    async def start_channel(self, message: Message, channel_cls: type[Channel]) -> None:
        """Start the channel and wait until its join has run (the socket blocks, as in
        Phoenix); the channel writes its join reply itself."""
        me = self.me
        node = me.node
        context = ChannelContext(
            endpoint=self.endpoint,
            conn=self.conn,
            serializer=self.serializer,
            socket_pid=me.pid,
            socket_id=self.socket_id,
            transport=self.conn.transport,
            topic=message.topic,
            join_ref=message.join_ref,
            assigns=dict(self.socket.assigns),
        )
        tag = node.make_ref()
        started = perf_counter()
        spec = ChildSpec(
            id="channel",
            start=lambda: spawn_link(run_channel, channel_cls, context, message, tag),
            restart="temporary",
            shutdown=5.0,
        )
        pid = await DynamicSupervisor.start_child(self.endpoint.channel_supervisor, spec)
        assert pid is not None
        monitor = node.monitor(me, pid)
        outcome = await me.receive(
            lambda m: (type(m) is JoinOutcome and m.tag == tag) or (type(m) is Down and m.ref == monitor)
        )
        level = self.endpoint.log_level
        if type(outcome) is Down:
            log.error("join of %r crashed: %s", message.topic, safe_repr(outcome.reason))
            self.reply(message, message.join_ref, "error", {"reason": "join crashed"})
            return
        if level and log.isEnabledFor(level):
            what = "JOINED" if outcome.ok else "REFUSED JOIN"
            log.log(level, "%s %s in %s", what, message.topic, took(perf_counter() - started))
        if not outcome.ok:
            node.demonitor(me, monitor, flush=True)
            return
        self.endpoint.stats.joins += 1
        self.channels.add(Joined(message.topic, pid, message.join_ref, monitor))

    async def replace(self, old: Joined) -> None:
        """Stop the channel a duplicate join replaces (shutdown, then kill after 5 s)."""
        me = self.me
        node = me.node
        self.channels.remove(old)
        node.exit(me.pid, old.pid, ("shutdown", "duplicate_join"))
        down = await me.receive(lambda m: type(m) is Down and m.ref == old.monitor, DUPLICATE_JOIN_GRACE, None)
        if down is None:
            node.exit(me.pid, old.pid, "kill")
            await me.receive(lambda m: type(m) is Down and m.ref == old.monitor)

    # -- channel exits ----------------------------------------------------------------

    def channel_down(self, down: Down) -> None:
        joined = self.channels.by_monitor.get(down.ref)
        if joined is None:
            return
        self.channels.remove(joined)
        normal = is_normal(down.reason)
        if normal:
            self.control(joined, PHX_CLOSE, {})
        else:
            self.control(joined, PHX_ERROR, {"reason": "channel_crash"})
        level = self.endpoint.log_level
        if level and log.isEnabledFor(level):
            # The crash report (ERROR, with the stack) is the channel's own; this is the
            # connection's line, as JOINED was.
            if normal:
                log.log(level, "LEFT %s (%s)", joined.topic, safe_repr(down.reason))
            else:
                log.log(level, "CRASHED %s: %s", joined.topic, safe_repr(down.reason))

    def control(self, joined: Joined, event: str, payload: Any) -> None:
        # phx_close / phx_error carry the join_ref as both join_ref and ref.
        message = Message(joined.topic, event, payload, joined.join_ref, joined.join_ref)
        self.conn.write(self.serializer.encode_push(message))
