"""`alight.client` against the reference app (`examples/reference.py`) in its own OS
process, over a real WebSocket: every event of the room channel, crash and rejoin,
stop without rejoin, binary payloads, presence with two clients, and a reconnect forced
by the server's ``disconnect`` broadcast.

Each test runs one event loop (`run`) with a bound on its whole time; every wait inside
is an awaited event (a message, a reply, an open) with a timeout in `UNIT`s.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from alight.client import (
    Channel,
    ChannelState,
    EncodeError,
    JoinError,
    Message,
    Presence,
    PushTimeout,
    Reply,
    Socket,
)

from ..conftest import UNIT
from .conftest import RunningApp

T = TypeVar("T")
WAIT = 5 * UNIT


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), 30 * UNIT)

    return asyncio.run(bounded(), debug=True)


@asynccontextmanager
async def client(app: RunningApp, user_id: str = "ann", **options: Any) -> AsyncIterator[Socket]:
    options.setdefault("rejoin_steps", (0.05,))
    async with Socket(f"ws://{app.host}/socket", params={"user_id": user_id}, **options) as socket:
        await socket.wait_connected(WAIT)
        yield socket


async def next_event(channel: Channel, event: str, where: Callable[[Message], bool] = lambda m: True) -> Message:
    """The next message ``event`` (matching ``where``) on ``channel``, within `WAIT`."""

    async def find() -> Message:
        async for message in channel:
            if message.event == event and where(message):
                return message
        raise AssertionError(f"{channel} closed before {event!r}")

    return await asyncio.wait_for(find(), WAIT)


async def wait_until(condition: Callable[[], bool], changed: asyncio.Event) -> None:
    """Wait (bounded) until ``condition()``, re-checking each time ``changed`` is set."""

    async def loop() -> None:
        while not condition():
            changed.clear()
            await changed.wait()

    await asyncio.wait_for(loop(), WAIT)


def post_broadcast(app: RunningApp, topic: str, event: str, payload: Any) -> Awaitable[None]:
    def post() -> None:
        body = json.dumps({"topic": topic, "event": event, "payload": payload}).encode()
        request = urllib.request.Request(app.http("/api/broadcast"), body, {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            assert response.status == 200

    return asyncio.to_thread(post)


# -- join ------------------------------------------------------------------------------


def test_join_ok_and_refused(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app) as socket:
            channel = socket.channel("room:lobby", {"device": "py"})
            assert await channel.join() == {"joined": "lobby"}
            assert channel.state is ChannelState.JOINED
            forbidden = socket.channel("room:forbidden")
            with pytest.raises(JoinError) as refused:
                await forbidden.join()
            assert refused.value.response == {"reason": "unauthorized"}
            assert forbidden.state is ChannelState.CLOSED
            unmatched = socket.channel("nowhere:1")
            with pytest.raises(JoinError, match="unmatched topic"):
                await unmatched.join()

    run(main)


def test_ping_error_reply_and_unknown_event(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app) as socket:
            channel = socket.channel("room:ping")
            await channel.join()
            assert await channel.push("ping", {"n": 1}) == Reply("ok", {"n": 1})
            error = await channel.push("error_reply")
            assert not error.ok
            assert error == Reply("error", {"reason": "nope"})

    run(main)


def test_push_buffered_until_joined(reference_app: RunningApp) -> None:
    async def main() -> None:
        socket = Socket(f"ws://{reference_app.host}/socket")
        channel = socket.channel("room:buffered")
        join = asyncio.ensure_future(channel.join())
        ping = asyncio.ensure_future(channel.push("ping", {"early": True}))
        await socket.connect()
        try:
            assert await join == {"joined": "buffered"}
            assert await ping == Reply("ok", {"early": True})
        finally:
            await socket.disconnect()

    run(main)


# -- events ----------------------------------------------------------------------------


def test_shout_reaches_a_second_client(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app, "a") as one, client(reference_app, "b") as two:
            first, second = one.channel("room:shout"), two.channel("room:shout")
            await first.join()
            await second.join()
            seen: list[Any] = []
            second.on("shout", lambda message: seen.append(message.payload))
            with pytest.raises(PushTimeout):  # shout has no reply
                await first.push("shout", {"text": "hi"}, timeout=0.2 * UNIT)
            message = await next_event(second, "shout")
            assert message.payload == {"text": "hi"}
            assert message.join_ref is None
            assert seen == [{"text": "hi"}]

    run(main)


def test_push_me_then_reply_and_async_reply(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app) as socket:
            channel = socket.channel("room:push")
            await channel.join()
            assert await channel.push("push_me", {"x": 1}) == Reply("ok", {})
            pushed = await next_event(channel, "pushed")
            assert pushed.payload == {"x": 1}
            assert pushed.join_ref == channel.join_ref
            assert await channel.push("async", {"later": 2}) == Reply("ok", {"later": 2})

    run(main)


def test_binary_echo(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app) as socket:
            channel = socket.channel("room:b")
            await channel.join()
            assert await channel.push("binary", b"\x01\x02\x03\xff") == Reply("ok", b"\x01\x02\x03\xff")

    run(main)


# -- lifecycle -------------------------------------------------------------------------


def test_crash_errors_the_channel_and_it_rejoins(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app) as socket:
            channel = socket.channel("room:crash")
            await channel.join()
            await next_event(channel, "presence_state")
            old = channel.join_ref
            with pytest.raises(PushTimeout):  # the crash answers with phx_error, not a reply
                await channel.push("crash", timeout=1 * UNIT)
            # The rejoin pushes a fresh presence_state for the new join_ref.
            await next_event(channel, "presence_state", lambda m: m.join_ref != old)
            assert channel.join_ref != old
            assert channel.state is ChannelState.JOINED
            assert await channel.push("ping", {"after": "crash"}) == Reply("ok", {"after": "crash"})

    run(main)


def test_stop_closes_the_channel_for_good(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app) as socket:
            channel = socket.channel("room:stop")
            await channel.join()
            assert await channel.push("stop") == Reply("ok", {})

            async def drain() -> None:
                async for _ in channel:
                    pass

            await asyncio.wait_for(drain(), WAIT)  # iteration ends on phx_close
            assert channel.state is ChannelState.CLOSED
            assert channel not in socket._channels_on("room:stop")

    run(main)


def test_leave_closes_and_ends_iteration(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app) as socket:
            channel = socket.channel("room:leave")
            await channel.join()
            await channel.leave()
            assert channel.state is ChannelState.CLOSED
            assert [m async for m in channel if m.event == "never"] == []

    run(main)


def test_reconnect_after_server_disconnect_and_rejoin(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app, "kick") as socket:
            opened = asyncio.Event()
            socket.on_open(opened.set)
            channel = socket.channel("room:kick")
            await channel.join()
            await next_event(channel, "presence_state")
            old = channel.join_ref
            await post_broadcast(reference_app, "user_socket:kick", "disconnect", {})
            await asyncio.wait_for(opened.wait(), WAIT)
            assert socket.connections == 2
            await next_event(channel, "presence_state", lambda m: m.join_ref != old)
            assert channel.state is ChannelState.JOINED
            assert await channel.push("user") == Reply("ok", {"user_id": "kick"})

    run(main)


# -- presence --------------------------------------------------------------------------


def test_presence_with_two_clients(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app, "alice") as one, client(reference_app, "bob") as two:
            first = one.channel("room:presence", {"device": "d1"})
            presence = Presence(first)
            changed = asyncio.Event()
            joins: list[str] = []
            leaves: list[str] = []
            presence.on_sync(changed.set)
            presence.on_join(lambda key, current, new: joins.append(key))
            presence.on_leave(lambda key, current, left: leaves.append(key))
            await first.join()
            await wait_until(lambda: sorted(presence.state) == ["alice"], changed)

            second = two.channel("room:presence", {"device": "d2"})
            await second.join()
            await wait_until(lambda: sorted(presence.state) == ["alice", "bob"], changed)
            devices = presence.list(lambda key, p: (key, [m["device"] for m in p["metas"]]))
            assert sorted(devices) == [("alice", ["d1"]), ("bob", ["d2"])]

            await second.leave()
            await wait_until(lambda: sorted(presence.state) == ["alice"], changed)
            assert "bob" in joins
            assert leaves == ["bob"]

    run(main)


def test_heartbeat_timeout_closes_reconnects_and_rejoins() -> None:
    """A server that answers joins but never heartbeats: the client closes with 1000
    "heartbeat timeout", reconnects and rejoins with a fresh join_ref."""

    async def main() -> None:
        from websockets.asyncio.server import ServerConnection, serve

        joins: list[str] = []
        closes: list[tuple[int | None, str | None]] = []
        rejoined = asyncio.Event()

        async def handler(ws: ServerConnection) -> None:
            async for data in ws:
                join_ref, ref, topic, event, _ = json.loads(data)
                if event == "phx_join":
                    joins.append(join_ref)
                    await ws.send(json.dumps([join_ref, ref, topic, "phx_reply", {"status": "ok", "response": {}}]))
                    if len(joins) == 2:
                        rejoined.set()
            closes.append((ws.close_code, ws.close_reason))

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            socket = Socket(f"ws://127.0.0.1:{port}/socket", heartbeat_interval=0.1 * UNIT, reconnect_steps=(0.01,))
            await socket.connect()
            try:
                channel = socket.channel("room:hb")
                await channel.join()
                await asyncio.wait_for(rejoined.wait(), WAIT)
                assert closes[0] == (1000, "heartbeat timeout")
                assert joins[0] != joins[1]
                assert socket.connections == 2
            finally:
                await socket.disconnect()

    run(main)


def test_refused_connection_backs_off() -> None:
    """Nothing listens: attempts follow the backoff (with jitter), not a tight loop."""

    async def main() -> None:
        from .conftest import free_port

        closes: list[float] = []
        enough = asyncio.Event()
        loop = asyncio.get_running_loop()

        def closed() -> None:
            closes.append(loop.time())
            if len(closes) == 6:
                enough.set()

        socket = Socket(f"ws://127.0.0.1:{free_port()}/socket", jitter=0)
        socket.on_close(closed)
        await socket.connect()
        try:
            await asyncio.wait_for(enough.wait(), WAIT)
        finally:
            await socket.disconnect()
        gaps = [b - a for a, b in itertools.pairwise(closes)]
        # 10, 50, 100, 150, 200 ms between attempts (plus the time a refusal takes).
        for gap, step in zip(gaps, (0.01, 0.05, 0.1, 0.15, 0.2), strict=True):
            assert gap >= step * 0.9
        assert not socket.is_connected

    run(main)


# -- failures that must stay local -----------------------------------------------------


def test_callbacks_that_raise_do_not_stop_the_socket(reference_app: RunningApp) -> None:
    """on_open / on_close callbacks that raise are logged; the connection loop goes on."""

    async def main() -> None:
        def boom() -> None:
            raise RuntimeError("a bug in the caller's callback")

        socket = Socket(f"ws://{reference_app.host}/socket", params={"user_id": "cb"})
        socket.on_open(boom)
        socket.on_close(boom)
        await socket.connect()
        try:
            channel = socket.channel("room:callbacks")
            assert await channel.join(timeout=WAIT) == {"joined": "callbacks"}
            assert await channel.push("ping", {"n": 1}, timeout=WAIT) == Reply("ok", {"n": 1})
        finally:
            await socket.disconnect()

    run(main)


def test_a_push_or_join_that_cannot_be_encoded_fails_alone(reference_app: RunningApp) -> None:
    """A payload that cannot be encoded fails its own call, even when buffered or made
    while the socket was not connected yet, and the socket and its other channels go on."""

    async def main() -> None:
        socket = Socket(f"ws://{reference_app.host}/socket", params={"user_id": "enc"})
        good = socket.channel("room:encodable")
        bad = socket.channel("room:unencodable", lambda: {"not json": object()})
        good_join = asyncio.ensure_future(good.join(timeout=WAIT))
        bad_join = asyncio.ensure_future(bad.join(timeout=WAIT))
        unencodable = asyncio.ensure_future(good.push("ping", {"not json": object()}))  # buffered
        with pytest.raises(EncodeError):
            await unencodable
        await socket.connect()
        try:
            with pytest.raises(EncodeError):
                await bad_join
            assert bad.state is ChannelState.CLOSED
            assert await good_join == {"joined": "encodable"}
            assert await good.push("ping", {"n": 2}, timeout=WAIT) == Reply("ok", {"n": 2})
            assert socket.is_connected
        finally:
            await socket.disconnect()

    run(main)


def test_a_join_that_times_out_or_is_cancelled_is_left() -> None:
    """A server that never answers joins: a join that times out (its own timeout,
    shorter than the channel's) or whose caller is cancelled sends ``phx_leave`` for
    its join_ref and closes the channel, so nothing stays joined behind the caller."""

    async def main() -> None:
        from websockets.asyncio.server import ServerConnection, serve

        frames: list[list[Any]] = []
        changed = asyncio.Event()

        async def handler(ws: ServerConnection) -> None:
            async for data in ws:
                frames.append(json.loads(data))
                changed.set()

        def sent(event: str) -> list[list[Any]]:
            return [frame for frame in frames if frame[3] == event]

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            socket = Socket(f"ws://127.0.0.1:{port}/socket", heartbeat_interval=30 * UNIT)
            await socket.connect()
            try:
                await socket.wait_connected(WAIT)
                timed_out = socket.channel("room:mute")
                with pytest.raises(PushTimeout):
                    await timed_out.join(timeout=0.05 * UNIT)
                assert timed_out.state is ChannelState.CLOSED
                await wait_until(lambda: len(sent("phx_leave")) == 1, changed)
                assert sent("phx_leave")[0][0] == sent("phx_join")[0][0]

                cancelled = socket.channel("room:mute")
                join = asyncio.ensure_future(cancelled.join())
                await wait_until(lambda: len(sent("phx_join")) == 2, changed)
                join.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await join
                assert cancelled.state is ChannelState.CLOSED
                await wait_until(lambda: len(sent("phx_leave")) == 2, changed)
                assert sent("phx_leave")[1][0] == sent("phx_join")[1][0]
            finally:
                await socket.disconnect()

    run(main)


def test_a_cancelled_disconnect_still_ends_the_connection() -> None:
    """A server that completes the WebSocket handshake and then never answers (not
    even the close handshake): a `disconnect` cancelled while it waits still stops the
    socket's connection loop and closes the connection."""

    async def main() -> None:
        received_after_handshake = asyncio.Event()
        peer_closed = asyncio.Event()

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            while await reader.read(65536):
                received_after_handshake.set()  # a close frame, which is never answered
            peer_closed.set()
            writer.close()

        server = await asyncio.start_server(mute, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            socket = Socket(f"ws://127.0.0.1:{port}/socket", heartbeat_interval=30 * UNIT)
            await socket.connect()
            await socket.wait_connected(WAIT)
            loop_task = socket._task
            assert loop_task is not None
            disconnect = asyncio.ensure_future(socket.disconnect())
            await asyncio.wait_for(received_after_handshake.wait(), WAIT)
            disconnect.cancel()
            with pytest.raises(asyncio.CancelledError):
                await disconnect
            await asyncio.wait([loop_task], timeout=WAIT)
            assert loop_task.done()
            await asyncio.wait_for(peer_closed.wait(), WAIT)
            assert not socket.is_connected

    run(main)
