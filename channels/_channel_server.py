"""The channel process: runs a `Channel`'s callbacks and performs their results.

Started under the endpoint's channel supervisor (temporary: the client rejoins),
one per joined topic per connection. It runs ``join`` as soon as it starts, writes
the join reply itself (so nothing it pushes afterwards can overtake the reply),
reports the outcome to its socket, subscribes to its topic with a fastlane, and
then serves: messages from its socket (``handle_in``), intercepted broadcasts
(``handle_out``), deferred replies, anything else (``handle_info``). It monitors its
socket and stops when the socket goes, as Phoenix's channel server does: with
``("shutdown", "closed")`` if the socket ended normally, with the socket's own exit
reason otherwise (``("shutdown", "disconnected")`` after a ``disconnect``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from time import perf_counter
from typing import Any, NoReturn

from ..actors import Down, ExitProcess, Ref
from ..actors.lowlevel import current_process
from ..actors.messages import KILLED, NORMAL, Reason
from ..telemetry import CHANNEL_HANDLED_IN, CHANNEL_JOINED
from .channel import Channel, ChannelContext, Error, NoReply, Ok, Reply, ReplyRequest, Stop
from .errors import InvalidChannelReturn
from .message import PHX_LEAVE, Broadcast, Message
from .message import Reply as ReplyMessage
from .pubsub import Fastlane

JOIN_RESULTS = "Ok(payload=None), Error(payload)"
IN_RESULTS = "Ok(payload), Error(payload), Reply(status, payload), NoReply(), Stop(reason, reply=None)"
OUT_RESULTS = "None, NoReply(), Stop(reason)"


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    """Sent by a channel to its socket once ``join`` has run (the reply is written)."""

    tag: Ref
    ok: bool


def _status(result: Ok | Error | Reply) -> tuple[str, Any]:
    if type(result) is Ok:
        return "ok", {} if result.payload is None else result.payload
    if type(result) is Error:
        return "error", {} if result.payload is None else result.payload
    assert isinstance(result, Reply)
    return result.status, {} if result.payload is None else result.payload


def _write_reply(context: ChannelContext, ref: Any, join_ref: Any, result: Ok | Error | Reply) -> None:
    status, payload = _status(result)
    frame = context.serializer.encode_reply(ReplyMessage(context.topic, status, payload, ref, join_ref))
    context.conn.write(frame)


async def _join(channel: Channel, context: ChannelContext, join: Message) -> Ok | Error:
    """``channel.join``, its result checked and timed for `CHANNEL_JOINED`. (Its own
    frame: these locals are not held for the channel's life in `run_channel`'s.)"""
    telemetry = current_process().node.telemetry
    started = perf_counter()
    result = await channel.join(context.topic, join.payload)
    if type(result) is not Ok and type(result) is not Error:
        raise InvalidChannelReturn(f"{type(channel).__qualname__}.join", result, JOIN_RESULTS)
    if telemetry.has_handlers(CHANNEL_JOINED):
        metadata = {
            "endpoint": context.endpoint,
            "channel": type(channel),
            "topic": context.topic,
            "params": join.payload,
            "transport": context.transport,
            "result": "ok" if type(result) is Ok else "error",
        }
        telemetry.execute(CHANNEL_JOINED, {"duration": perf_counter() - started}, metadata)
    return result


async def run_channel(channel_cls: type[Channel], context: ChannelContext, join: Message, tag: Ref) -> None:
    """The body of a channel process."""
    me = current_process()
    me.callback = "join"
    socket_monitor = me.node.monitor(me, context.socket_pid)
    channel = channel_cls()
    channel._context = context
    channel.ref = join.ref
    result = await _join(channel, context, join)
    if type(result) is Error:
        _write_reply(context, join.ref, join.join_ref, result)
        me.node.send(context.socket_pid, JoinOutcome(tag, ok=False))
        raise ExitProcess("normal")
    lane = Fastlane(context.conn, context.serializer, channel_cls._intercepting)
    context.endpoint.pubsub.subscribe(me.pid, context.topic, lane)
    channel.joined = True
    _write_reply(context, join.ref, join.join_ref, result)
    me.node.send(context.socket_pid, JoinOutcome(tag, ok=True))
    channel.ref = None
    del join, result  # the join message and reply are not held for the channel's life
    # The serving loop is inline, not a coroutine of its own: one frame fewer in
    # every idle channel process.
    topic = context.topic
    try:
        while True:
            message = await me.receive()
            kind = type(message)
            if kind is Message:
                await _handle_in(channel, context, message)
            elif kind is Broadcast and message.topic == topic:
                # Only the channel's own topic is intercepted; a broadcast from any
                # other subscription is just a message (Phoenix: handle_info).
                me.callback = "handle_out"
                _check_out(channel, "handle_out", await channel.handle_out(message.event, message.payload))
            elif kind is ReplyRequest:
                ref = message.socket_ref
                _write_reply(context, ref.ref, ref.join_ref, message.reply)
            elif kind is Down and message.ref == socket_monitor:
                # Phoenix: a normal transport exit becomes {:shutdown, :closed}; any
                # other reason (e.g. ("shutdown", "disconnected")) is the channel's too.
                reason = message.reason
                await _stop(channel, ("shutdown", "closed") if reason == NORMAL else reason)
            else:
                me.callback = "handle_info"
                _check_out(channel, "handle_info", await channel.handle_info(message))
    except _StopChannel as stop:
        await _stop(channel, stop.reason)
    except asyncio.CancelledError:
        # An exit signal (socket supervisor shutdown, duplicate join): clean up as
        # an orderly stop; a kill has already removed the process.
        reason = me.pending_exit
        if me.alive and reason is not None and reason != KILLED:
            me.callback = "terminate"
            await channel.terminate(reason)
        raise


class _StopChannel(Exception):  # noqa: N818 - control flow, never escapes the channel
    def __init__(self, reason: Reason) -> None:
        self.reason = reason


async def _handle_in(channel: Channel, context: ChannelContext, message: Message) -> None:
    me = current_process()
    channel.ref = message.ref
    try:
        if message.event == PHX_LEAVE:
            _write_reply(context, message.ref, context.join_ref, Ok())
            raise _StopChannel(("shutdown", "left"))
        me.callback = "handle_in"
        # The clock is read only when someone listens: with no handler, the hot path
        # pays one dict lookup for telemetry, not two clock reads.
        timed = me.node.telemetry.has_handlers(CHANNEL_HANDLED_IN)
        started = perf_counter() if timed else 0.0
        result = await channel.handle_in(message.event, message.payload)
        if timed:
            _handled_in_event(channel, context, message, perf_counter() - started)
        kind = type(result)
        if kind is Ok or kind is Error or kind is Reply:
            _write_reply(context, message.ref, context.join_ref, result)  # type: ignore[arg-type]
        elif kind is Stop:
            assert isinstance(result, Stop)
            stop_reply = result.reply
            if stop_reply is not None:
                if type(stop_reply) is not Ok and type(stop_reply) is not Error and type(stop_reply) is not Reply:
                    raise InvalidChannelReturn(f"{type(channel).__qualname__}.handle_in", result, IN_RESULTS)
                _write_reply(context, message.ref, context.join_ref, stop_reply)
            raise _StopChannel(result.reason)
        elif kind is not NoReply:
            raise InvalidChannelReturn(f"{type(channel).__qualname__}.handle_in", result, IN_RESULTS)
    finally:
        channel.ref = None


def _handled_in_event(channel: Channel, context: ChannelContext, message: Message, duration: float) -> None:
    """Emit `CHANNEL_HANDLED_IN` (Phoenix's ``[:phoenix, :channel_handled_in]``)."""
    metadata = {
        "endpoint": context.endpoint,
        "channel": type(channel),
        "topic": context.topic,
        "event": message.event,
        "params": message.payload,
    }
    current_process().node.telemetry.execute(CHANNEL_HANDLED_IN, {"duration": duration}, metadata)


def _check_out(channel: Channel, callback: str, result: Any) -> None:
    if result is None or type(result) is NoReply:
        return
    if type(result) is Stop and result.reply is None:  # nothing to reply to here
        raise _StopChannel(result.reason)
    raise InvalidChannelReturn(f"{type(channel).__qualname__}.{callback}", result, OUT_RESULTS)


async def _stop(channel: Channel, reason: Reason) -> NoReturn:
    """An orderly stop (or a crash asked for with a non-shutdown Stop reason)."""
    me = current_process()
    me.callback = "terminate"
    await channel.terminate(reason)
    # A Stop with an abnormal reason is a crash: phx_error, and a crash report.
    raise ExitProcess(reason)
