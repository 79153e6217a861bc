"""`alight.client` against the reference app (`examples/reference.py`) in its own OS
process, over a real WebSocket: every event of the room channel, crash and rejoin,
stop without rejoin, binary payloads, presence with two clients, and a reconnect forced
by the server's ``disconnect`` broadcast.

Each test runs one event loop (`run`) with a bound on its whole time; every wait inside
is an awaited event (a message, a reply, an open) with a timeout in `UNIT`s.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from alight.client import Channel, ChannelState, JoinError, Message, Presence, PushTimeout, Reply, Socket

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
