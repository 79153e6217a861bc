"""What is particular to one transport of `alight.client`, against the reference app in
its own OS process (the scenarios all transports share, over each transport and vsn,
are in `test_python_client`).

Long-poll (docs/protocol.md §5): the endpoint URL, a batch of pushes in flight at once, and a
leave just before a disconnect. The WebSocket -> long-poll fallback: when it happens and
when it must not.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from testkit import UNIT
from testkit.processes import RunningApp
from testkit.python_client import LONGPOLL, WAIT, client, run, wait_until

from alight.client import LongPoll, Presence, Reply, Socket

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

# -- long-poll -------------------------------------------------------------------------


def test_longpoll_url() -> None:
    socket = Socket("ws://h:1/socket/websocket", params={"user_id": "u"}, transport=LongPoll, vsn="1.0.0")
    assert socket.endpoint_url == "http://h:1/socket/longpoll?user_id=u&vsn=1.0.0"
    assert Socket("https://h/socket/longpoll").endpoint_url == "wss://h/socket/websocket?vsn=2.0.0"
    # Params as phoenix.js puts them in the URL (the server parses brackets back into
    # nested params): not Python reprs.
    nested = Socket("ws://h/socket", params={"user": {"id": 1, "tags": ["a", "b"]}, "debug": True, "none": None})
    assert nested.endpoint_url == (
        "ws://h/socket/websocket?user%5Bid%5D=1&user%5Btags%5D%5B0%5D=a&user%5Btags%5D%5B1%5D=b&debug=true&vsn=2.0.0"
    )
    with pytest.raises(ValueError, match="vsn"):
        Socket("ws://h/socket", vsn="3.0.0")
    with pytest.raises(ValueError, match="transport"):
        Socket("ws://h/socket", transport="carrier-pigeon")  # type: ignore[arg-type]


def test_longpoll_many_pushes_at_once_are_batched(reference_app: RunningApp) -> None:
    """More than one POST's worth (100 lines) of pushes sent in one go: all answered, in order."""

    async def main() -> None:
        async with client(reference_app, transport=LONGPOLL) as socket:
            channel = socket.channel("room:batch")
            await channel.join()
            replies = await asyncio.gather(*(channel.push("ping", {"n": n}) for n in range(250)))
            assert replies == [Reply("ok", {"n": n}) for n in range(250)]

    run(main)


def test_a_leave_just_before_a_disconnect_reaches_the_server(reference_app: RunningApp) -> None:
    """Over long-poll, `disconnect` waits (bounded) for the POST of a ``phx_leave``
    queued just before it: the others see the presence leave at once, not when the
    server ends the idle session (15 s later)."""

    async def main() -> None:
        async with client(reference_app, "alice", LONGPOLL) as one, client(reference_app, "bob", LONGPOLL) as two:
            watcher = one.channel("room:leave-then-go", {"device": "d1"})
            presence = Presence(watcher)
            changed = asyncio.Event()
            presence.on_sync(changed.set)
            await watcher.join(timeout=WAIT)
            leaving = two.channel("room:leave-then-go", {"device": "d2"})
            await leaving.join(timeout=WAIT)
            await wait_until(lambda: sorted(presence.state) == ["alice", "bob"], changed)
            await leaving.leave()
            await two.disconnect()
            await wait_until(lambda: sorted(presence.state) == ["alice"], changed)

    run(main)


# -- WebSocket -> long-poll fallback ---------------------------------------------------


@asynccontextmanager
async def routing_proxy(app: RunningApp, websocket: str) -> AsyncIterator[str]:
    """A TCP proxy in front of the reference app that passes long-poll requests through
    and treats WebSocket upgrades as ``websocket`` says: ``"refuse"`` (HTTP 404),
    ``"hang"`` (never answer) or ``"mute"`` (a WebSocket server that never replies)."""
    from websockets.asyncio.server import ServerConnection, serve

    app_host, app_port = app.host.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def mute(ws: ServerConnection) -> None:
        async for _ in ws:
            pass

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if b"/websocket" in line and websocket == "refuse":
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            writer.close()
            return
        if b"/websocket" in line and websocket == "hang":
            await reader.read()  # until the client gives up
            writer.close()
            return
        host, port = (app_host, int(app_port)) if b"/websocket" not in line else ("127.0.0.1", mute_port)
        up_reader, up_writer = await asyncio.open_connection(host, port)
        up_writer.write(line)
        for task in (loop.create_task(pipe(reader, up_writer)), loop.create_task(pipe(up_reader, writer))):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async with serve(mute, "127.0.0.1", 0) as mute_server:
        mute_port = mute_server.sockets[0].getsockname()[1]
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"127.0.0.1:{port}"
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("websocket", ["refuse", "hang", "mute"])
def test_falls_back_to_longpoll(reference_app: RunningApp, websocket: str) -> None:
    async def main() -> None:
        async with routing_proxy(reference_app, websocket) as host:
            socket = Socket(f"ws://{host}/socket", params={"user_id": "fb"}, longpoll_fallback=0.3 * UNIT)
            await socket.connect()
            try:
                channel = socket.channel("room:fallback")
                assert await channel.join(timeout=WAIT) == {"joined": "fallback"}
                assert socket.transport == "longpoll"
                # Only the mute WebSocket opened (and failed its health check) before long-poll did.
                assert socket.connections == (2 if websocket == "mute" else 1)
                assert await channel.push("ping", {"n": 1}) == Reply("ok", {"n": 1})
            finally:
                await socket.disconnect()

    run(main)


def test_no_fallback_when_the_websocket_works(reference_app: RunningApp) -> None:
    async def main() -> None:
        socket = Socket(f"ws://{reference_app.host}/socket", longpoll_fallback=0.3 * UNIT)
        async with socket:
            channel = socket.channel("room:no-fallback")
            await channel.join(timeout=WAIT)
            await asyncio.sleep(0.5 * UNIT)  # past the health check
            assert await channel.push("ping", {}) == Reply("ok", {})
            assert socket.transport == "websocket"
            assert socket.connections == 1

    run(main)


def test_no_fallback_once_a_websocket_opened_and_the_server_went_away() -> None:
    """As phoenix.js: only a WebSocket that never opened falls back. One that worked,
    then lost its server (the reconnects are refused), keeps trying WebSocket, so the
    clients of a restarting server do not all move to long-poll for good."""

    async def main() -> None:
        from websockets.asyncio.server import ServerConnection, serve

        async def answer_heartbeats(ws: ServerConnection) -> None:
            async for data in ws:
                _, ref, topic, event, _ = json.loads(data)
                if topic == "phoenix" and event == "heartbeat":
                    await ws.send(json.dumps([None, ref, "phoenix", "phx_reply", {"status": "ok", "response": {}}]))

        closes = 0
        closed = asyncio.Event()

        def on_close() -> None:
            nonlocal closes
            closes += 1
            closed.set()

        async with serve(answer_heartbeats, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            socket = Socket(f"ws://127.0.0.1:{port}/socket", longpoll_fallback=0.3 * UNIT, reconnect_steps=(0.01,))
            socket.on_close(on_close)
            await socket.connect()
            await socket.wait_connected(WAIT)
        # The server is gone (closed with its connections, nothing listens): the first
        # close, then refused attempts.
        try:
            await wait_until(lambda: closes >= 3, closed)
            assert socket.transport == "websocket"
        finally:
            await socket.disconnect()

    run(main)
