"""`alight.client` over long-poll and with ``vsn=1.0.0``, against the reference app in its
own OS process (the WebSocket + V2 cases are in `test_python_client`).

Long-poll (PROTOCOL.md §5): join, replies, server pushes, broadcasts between a long-poll
and a WebSocket client, presence, crash and rejoin, a batch of pushes in flight at once,
and a refused connection that backs off. V1 (§2.2): join and ping over both transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from alight.client import ChannelState, EncodeError, JoinError, LongPoll, Presence, PushTimeout, Reply, Socket

from ..conftest import UNIT
from .conftest import RunningApp
from .test_python_client import WAIT, next_event, post_broadcast, run, wait_until


@asynccontextmanager
async def client(app: RunningApp, user_id: str = "ann", **options: Any) -> AsyncIterator[Socket]:
    options.setdefault("rejoin_steps", (0.05,))
    options.setdefault("transport", LongPoll)
    async with Socket(f"http://{app.host}/socket", params={"user_id": user_id}, **options) as socket:
        await socket.wait_connected(WAIT)
        yield socket


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


def test_longpoll_join_ping_error_reply_and_refused_join(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app) as socket:
            assert socket.connections == 1
            channel = socket.channel("room:lp", {"device": "py"})
            assert await channel.join() == {"joined": "lp"}
            assert channel.state is ChannelState.JOINED
            assert await channel.push("ping", {"n": 1}) == Reply("ok", {"n": 1})
            assert await channel.push("error_reply") == Reply("error", {"reason": "nope"})
            assert await channel.push("user") == Reply("ok", {"user_id": "ann"})
            forbidden = socket.channel("room:forbidden")
            with pytest.raises(Exception, match="unauthorized"):
                await forbidden.join()

    run(main)


def test_longpoll_many_pushes_at_once_are_batched(reference_app: RunningApp) -> None:
    """More than one POST's worth (100 lines) of pushes sent in one go: all answered, in order."""

    async def main() -> None:
        async with client(reference_app) as socket:
            channel = socket.channel("room:batch")
            await channel.join()
            replies = await asyncio.gather(*(channel.push("ping", {"n": n}) for n in range(250)))
            assert replies == [Reply("ok", {"n": n}) for n in range(250)]

    run(main)


def test_longpoll_push_me_and_async_reply(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app) as socket:
            channel = socket.channel("room:lp-push")
            await channel.join()
            assert await channel.push("push_me", {"x": 1}) == Reply("ok", {})
            pushed = await next_event(channel, "pushed")
            assert pushed.payload == {"x": 1}
            assert await channel.push("async", {"later": 2}) == Reply("ok", {"later": 2})

    run(main)


def test_longpoll_shout_between_longpoll_and_websocket(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app, "a") as lp, client(reference_app, "b", transport="websocket") as ws:
            first, second = lp.channel("room:lp-shout"), ws.channel("room:lp-shout")
            await first.join()
            await second.join()
            with pytest.raises(PushTimeout):  # shout has no reply
                await first.push("shout", {"text": "from lp"}, timeout=0.2 * UNIT)
            assert (await next_event(second, "shout")).payload == {"text": "from lp"}
            with pytest.raises(PushTimeout):
                await second.push("shout", {"text": "from ws"}, timeout=0.2 * UNIT)
            message = await next_event(first, "shout", lambda m: m.payload == {"text": "from ws"})
            assert message.join_ref is None

    run(main)


def test_longpoll_crash_errors_the_channel_and_it_rejoins(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app) as socket:
            channel = socket.channel("room:lp-crash")
            await channel.join()
            await next_event(channel, "presence_state")
            old = channel.join_ref
            with pytest.raises(PushTimeout):
                await channel.push("crash", timeout=1 * UNIT)
            await next_event(channel, "presence_state", lambda m: m.join_ref != old)
            assert channel.state is ChannelState.JOINED
            assert await channel.push("ping", {"after": "crash"}) == Reply("ok", {"after": "crash"})

    run(main)


def test_longpoll_presence_with_two_clients(reference_app: RunningApp) -> None:
    async def main() -> None:
        async with client(reference_app, "lp-alice") as one, client(reference_app, "lp-bob") as two:
            first = one.channel("room:lp-presence", {"device": "d1"})
            presence = Presence(first)
            changed = asyncio.Event()
            leaves: list[str] = []
            presence.on_sync(changed.set)
            presence.on_leave(lambda key, current, left: leaves.append(key))
            await first.join()
            await wait_until(lambda: sorted(presence.state) == ["lp-alice"], changed)
            second = two.channel("room:lp-presence", {"device": "d2"})
            await second.join()
            await wait_until(lambda: sorted(presence.state) == ["lp-alice", "lp-bob"], changed)
            devices = presence.list(lambda key, p: (key, [m["device"] for m in p["metas"]]))
            assert sorted(devices) == [("lp-alice", ["d1"]), ("lp-bob", ["d2"])]
            await second.leave()
            await wait_until(lambda: sorted(presence.state) == ["lp-alice"], changed)
            assert leaves == ["lp-bob"]

    run(main)


def test_longpoll_session_gone_reconnects_and_rejoins(reference_app: RunningApp) -> None:
    """The ``disconnect`` broadcast ends the session: the next GET answers 410 although the
    client holds a token, so it reconnects with a new session and rejoins (§5.4, §5.5)."""

    async def main() -> None:
        async with client(reference_app, "lp-kick") as socket:
            opened = asyncio.Event()
            socket.on_open(opened.set)
            channel = socket.channel("room:lp-kick")
            await channel.join()
            await next_event(channel, "presence_state")
            old = channel.join_ref
            await post_broadcast(reference_app, "user_socket:lp-kick", "disconnect", {})
            await asyncio.wait_for(opened.wait(), 15 * UNIT)  # at most the pending GET's window, then 410
            assert socket.connections == 2
            await next_event(channel, "presence_state", lambda m: m.join_ref != old)
            assert channel.state is ChannelState.JOINED
            assert await channel.push("user") == Reply("ok", {"user_id": "lp-kick"})

    run(main)


def test_longpoll_refused_connection_backs_off(reference_app: RunningApp) -> None:
    """``connect`` refuses ``token=bad``: every GET answers 403; attempts back off."""

    async def main() -> None:
        closes: list[float] = []
        enough = asyncio.Event()
        loop = asyncio.get_running_loop()

        def closed() -> None:
            closes.append(loop.time())
            if len(closes) == 4:
                enough.set()

        socket = Socket(f"http://{reference_app.host}/socket", params={"token": "bad"}, transport=LongPoll, jitter=0)
        socket.on_close(closed)
        await socket.connect()
        try:
            await asyncio.wait_for(enough.wait(), WAIT)
        finally:
            await socket.disconnect()
        assert socket.connections == 0
        for (a, b), step in zip(itertools.pairwise(closes[:4]), (0.01, 0.05, 0.1), strict=True):
            assert b - a >= step * 0.9

    run(main)


# -- vsn 1.0.0 -------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
def test_v1_join_ping_and_push(reference_app: RunningApp, transport: str) -> None:
    async def main() -> None:
        async with client(reference_app, "v1", transport=transport, vsn="1.0.0") as socket:
            channel = socket.channel("room:v1", {"device": "py"})
            assert await channel.join() == {"joined": "v1"}
            assert await channel.push("ping", {"n": 1}) == Reply("ok", {"n": 1})
            assert await channel.push("push_me", {"x": 1}) == Reply("ok", {})
            assert (await next_event(channel, "pushed")).payload == {"x": 1}
            with pytest.raises(EncodeError, match=r"1\.0\.0"):
                await channel.push("binary", b"\x01")
            assert socket.invalid_frames == 0

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


def test_a_leave_just_before_a_disconnect_reaches_the_server(reference_app: RunningApp) -> None:
    """Over long-poll, `disconnect` waits (bounded) for the POST of a ``phx_leave``
    queued just before it: the others see the presence leave at once, not when the
    server ends the idle session (15 s later)."""

    async def main() -> None:
        async with client(reference_app, "alice") as one, client(reference_app, "bob") as two:
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


# -- presence with three users ---------------------------------------------------------


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
def test_presence_with_three_users(reference_app: RunningApp, transport: str) -> None:
    """Three clients on one topic: each one's Presence syncs to all three users; when
    the third leaves, the other two see it leave and their lists are right."""

    async def main() -> None:
        topic = f"room:three-{transport}"
        users = ("alice", "bob", "carol")
        async with contextlib.AsyncExitStack() as stack:
            changed = asyncio.Event()
            channels, presences = {}, {}
            joins: dict[str, list[str]] = {user: [] for user in users}
            leaves: dict[str, list[str]] = {user: [] for user in users}

            def record(into: list[str], key: str, current: object, presence: object) -> None:
                into.append(key)

            for user in users:
                socket = await stack.enter_async_context(client(reference_app, user, transport=transport))
                channel = socket.channel(topic, {"device": f"py-{user}"})
                presence = Presence(channel)
                presence.on_sync(changed.set)
                presence.on_join(functools.partial(record, joins[user]))
                presence.on_leave(functools.partial(record, leaves[user]))
                channels[user], presences[user] = channel, presence
                await channel.join()

            def listed(user: str) -> list[tuple[str, list[str]]]:
                return sorted(presences[user].list(lambda key, p: (key, [m["device"] for m in p["metas"]])))

            everyone = [(user, [f"py-{user}"]) for user in users]
            await wait_until(lambda: all(listed(user) == everyone for user in users), changed)
            for user in users:
                assert set(joins[user]) == set(users)
                assert leaves[user] == []

            await channels["carol"].leave()
            await wait_until(lambda: listed("alice") == listed("bob") == everyone[:2], changed)
            assert leaves["alice"] == leaves["bob"] == ["carol"]

    run(main)


# -- every event, each transport and vsn ------------------------------------------------


@pytest.mark.parametrize(("transport", "vsn"), [(t, v) for t in ("websocket", "longpoll") for v in ("2.0.0", "1.0.0")])
def test_every_event_of_the_reference_app(reference_app: RunningApp, transport: str, vsn: str) -> None:
    """Two clients on one topic: join ok and refused, every ``handle_in`` event, server
    pushes, shouts, the HTTP broadcast route, a crash (rejoin with a new join_ref) and a
    stop (closed for good) — over ``transport`` with ``vsn``."""

    async def main() -> None:
        name = f"every-{transport}-{vsn}"
        topic = f"room:{name}"
        options: dict[str, Any] = {"transport": transport, "vsn": vsn}
        async with client(reference_app, "eve", **options) as socket, client(reference_app, "fay", **options) as other:
            channel, second = socket.channel(topic, {"device": "py"}), other.channel(topic)
            assert await channel.join() == {"joined": name}
            assert await second.join() == {"joined": name}
            with pytest.raises(JoinError) as refused:
                await socket.channel("room:forbidden").join()
            assert refused.value.response == {"reason": "unauthorized"}

            assert await channel.push("ping", {"n": 1}) == Reply("ok", {"n": 1})
            assert await channel.push("error_reply") == Reply("error", {"reason": "nope"})
            assert await channel.push("user") == Reply("ok", {"user_id": "eve"})
            assert await channel.push("nope") == Reply("error", {"reason": "unknown event nope"})
            assert await channel.push("push_me", {"x": 1}) == Reply("ok", {})
            assert (await next_event(channel, "pushed")).payload == {"x": 1}
            assert await channel.push("async", {"a": 1}) == Reply("ok", {"a": 1})
            if vsn == "1.0.0":
                with pytest.raises(EncodeError):
                    await channel.push("binary", b"\x01")
            elif transport == "websocket":
                assert await channel.push("binary", b"\x01\x02") == Reply("ok", b"\x01\x02")

            with pytest.raises(PushTimeout):  # shout has no reply
                await channel.push("shout", {"text": "hi"}, timeout=0.2 * UNIT)
            assert (await next_event(second, "shout")).payload == {"text": "hi"}
            await post_broadcast(reference_app, topic, "announce", {"n": 1})
            assert (await next_event(channel, "announce")).payload == {"n": 1}
            assert (await next_event(second, "announce")).payload == {"n": 1}

            old = channel.join_ref
            with pytest.raises(PushTimeout):  # a crash answers with phx_error
                await channel.push("crash", timeout=0.5 * UNIT)
            await next_event(channel, "presence_state", lambda m: channel.join_ref != old)
            assert channel.state is ChannelState.JOINED
            assert await channel.push("ping", {"after": "crash"}) == Reply("ok", {"after": "crash"})

            assert await second.push("stop") == Reply("ok", {})
            assert [m async for m in second if m.event == "never"] == []  # iteration ends on phx_close
            assert second.state is ChannelState.CLOSED
            await asyncio.sleep(0.3 * UNIT)  # several rejoin periods (0.05 s here): none happens
            assert second.state is ChannelState.CLOSED
            assert await channel.push("ping", {"still": "here"}) == Reply("ok", {"still": "here"})

    run(main)
