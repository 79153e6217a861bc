"""`alight.client` against the reference app (`examples/reference.py`) in its own OS
process: the scenarios every transport shares, each run over the transports (and vsns)
it applies to — join, replies, server pushes, shouts, binary payloads, crash and rejoin,
stop and leave, a reconnect forced by the server's ``disconnect`` broadcast, presence —
then the WebSocket client against small fake servers (heartbeat timeout, backoff,
failures that must stay local). Long-poll-only behaviours and the WebSocket -> long-poll
fallback are in `test_python_client_transports`.

Each test runs one event loop (`run`) with a bound on its whole time; every wait inside
is an awaited event (a message, a reply, an open) with a timeout in `UNIT`s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import itertools
import json
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from testkit import UNIT
from testkit.processes import RunningApp
from testkit.python_client import LONGPOLL, WAIT, WEBSOCKET, TransportCase, client, run, wait_until

from alight.client import (
    Channel,
    ChannelState,
    ClientEncodeError,
    ConnectFailed,
    JoinError,
    Message,
    Presence,
    PushTimeout,
    Reply,
    Socket,
)

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

# The server ends a long-poll session at the next GET: at most the pending GET's window
# (docs/protocol.md §5.4), then 410, then a new session (§5.5).
TRANSPORTS = [pytest.param(transport, id=transport.name) for transport in (WEBSOCKET, LONGPOLL)]
# Every transport with every vsn (docs/protocol.md §2.2, §2.3).
VARIANTS = [
    pytest.param(transport, vsn, id=f"{transport.name}-{vsn}")
    for transport in (WEBSOCKET, LONGPOLL)
    for vsn in ("2.0.0", "1.0.0")
]


async def next_event(channel: Channel, event: str, where: Callable[[Message], bool] = lambda m: True) -> Message:
    """The next message ``event`` (matching ``where``) on ``channel``, within `WAIT`."""

    async def find() -> Message:
        async for message in channel:
            if message.event == event and where(message):
                return message
        raise AssertionError(f"{channel} closed before {event!r}")

    return await asyncio.wait_for(find(), WAIT)


def post_broadcast(app: RunningApp, topic: str, event: str, payload: Any) -> Awaitable[None]:
    def post() -> None:
        body = json.dumps({"topic": topic, "event": event, "payload": payload}).encode()
        request = urllib.request.Request(app.http("/api/broadcast"), body, {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            assert response.status == 200

    return asyncio.to_thread(post)


# Topics (and users, where the server knows sockets by user) carry the transport's name:
# a long-poll session outlives its test until the server's idle timeout, and must not
# show up in the next test's presence.

# -- join ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_join_ok_and_refused(reference_app: RunningApp, transport: TransportCase) -> None:
    async def main() -> None:
        async with client(reference_app, transport=transport) as socket:
            assert socket.connections == 1
            assert socket.transport == transport.name
            channel = socket.channel(f"room:join-{transport.name}", {"device": "py"})
            assert await channel.join() == {"joined": f"join-{transport.name}"}
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


@pytest.mark.parametrize(("transport", "vsn"), VARIANTS)
def test_ping_error_reply_and_user(reference_app: RunningApp, transport: TransportCase, vsn: str) -> None:
    async def main() -> None:
        async with client(reference_app, transport=transport, vsn=vsn) as socket:
            channel = socket.channel(f"room:ping-{transport.name}-{vsn}")
            await channel.join()
            assert await channel.push("ping", {"n": 1}) == Reply("ok", {"n": 1})
            error = await channel.push("error_reply")
            assert not error.ok
            assert error == Reply("error", {"reason": "nope"})
            assert await channel.push("user") == Reply("ok", {"user_id": "ann"})
            assert socket.invalid_frames == 0

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


@pytest.mark.parametrize(
    ("one", "two"),
    [
        pytest.param(WEBSOCKET, WEBSOCKET, id="websocket-websocket"),
        pytest.param(LONGPOLL, WEBSOCKET, id="longpoll-websocket"),
    ],
)
def test_shout_reaches_the_other_client(reference_app: RunningApp, one: TransportCase, two: TransportCase) -> None:
    """A shout from a client over ``one`` reaches a client over ``two``, and back."""

    async def main() -> None:
        topic = f"room:shout-{one.name}-{two.name}"
        async with client(reference_app, "a", one) as first_socket, client(reference_app, "b", two) as second_socket:
            first, second = first_socket.channel(topic), second_socket.channel(topic)
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
            with pytest.raises(PushTimeout):
                await second.push("shout", {"text": "back"}, timeout=0.2 * UNIT)
            message = await next_event(first, "shout", lambda m: m.payload == {"text": "back"})
            assert message.join_ref is None

    run(main)


@pytest.mark.parametrize(("transport", "vsn"), VARIANTS)
def test_push_me_then_reply_and_async_reply(reference_app: RunningApp, transport: TransportCase, vsn: str) -> None:
    async def main() -> None:
        async with client(reference_app, transport=transport, vsn=vsn) as socket:
            channel = socket.channel(f"room:push-{transport.name}-{vsn}", {"device": "py"})
            assert await channel.join() == {"joined": f"push-{transport.name}-{vsn}"}
            assert await channel.push("push_me", {"x": 1}) == Reply("ok", {})
            pushed = await next_event(channel, "pushed")
            assert pushed.payload == {"x": 1}
            # A V1 frame carries no join_ref (docs/protocol.md §2.2).
            assert pushed.join_ref == (channel.join_ref if vsn == "2.0.0" else None)
            assert await channel.push("async", {"later": 2}) == Reply("ok", {"later": 2})
            assert socket.invalid_frames == 0

    run(main)


@pytest.mark.parametrize(
    ("transport", "vsn"),
    [pytest.param(WEBSOCKET, "2.0.0", id="websocket-2.0.0")] + [p for p in VARIANTS if p.values[1] == "1.0.0"],
)
def test_binary_payloads(reference_app: RunningApp, transport: TransportCase, vsn: str) -> None:
    """vsn 2.0.0 echoes a binary payload as binary; vsn 1.0.0 (no binary frames) fails
    the push alone, before anything is sent."""

    async def main() -> None:
        async with client(reference_app, transport=transport, vsn=vsn) as socket:
            channel = socket.channel(f"room:b-{transport.name}-{vsn}")
            await channel.join()
            if vsn == "1.0.0":
                with pytest.raises(ClientEncodeError, match=r"1\.0\.0"):
                    await channel.push("binary", b"\x01")
            else:
                assert await channel.push("binary", b"\x01\x02\x03\xff") == Reply("ok", b"\x01\x02\x03\xff")
            assert await channel.push("ping", {"n": 1}) == Reply("ok", {"n": 1})
            assert socket.invalid_frames == 0

    run(main)


# -- lifecycle -------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_crash_errors_the_channel_and_it_rejoins(reference_app: RunningApp, transport: TransportCase) -> None:
    async def main() -> None:
        async with client(reference_app, transport=transport) as socket:
            channel = socket.channel(f"room:crash-{transport.name}")
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


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reconnect_after_server_disconnect_and_rejoin(reference_app: RunningApp, transport: TransportCase) -> None:
    """The ``disconnect`` broadcast ends the socket's connection (over long-poll: the
    session, although the client holds its token): the client opens a new one, within
    the transport's bound, and rejoins."""

    async def main() -> None:
        user = f"kick-{transport.name}"
        async with client(reference_app, user, transport) as socket:
            opened = asyncio.Event()
            socket.on_open(opened.set)
            channel = socket.channel(f"room:{user}")
            await channel.join()
            await next_event(channel, "presence_state")
            old = channel.join_ref
            await post_broadcast(reference_app, f"user_socket:{user}", "disconnect", {})
            await asyncio.wait_for(opened.wait(), transport.reopen_within)
            assert socket.connections == 2
            await next_event(channel, "presence_state", lambda m: m.join_ref != old)
            assert channel.state is ChannelState.JOINED
            assert await channel.push("user") == Reply("ok", {"user_id": user})

    run(main)


@pytest.mark.parametrize("refused_by", ["nothing listens", "connect refuses"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_connection_backs_off(reference_app: RunningApp, transport: TransportCase, refused_by: str) -> None:
    """Nothing listens, or the app's ``connect`` refuses ``token=bad`` (the upgrade or
    every GET answers 403): attempts follow the backoff (no jitter here), not a tight loop."""

    async def main() -> None:
        from testkit.processes import free_port

        steps = (0.01, 0.05, 0.1, 0.15, 0.2)  # the first default reconnect steps, in seconds
        closes: list[float] = []
        enough = asyncio.Event()
        loop = asyncio.get_running_loop()

        def closed() -> None:
            closes.append(loop.time())
            if len(closes) == len(steps) + 1:
                enough.set()

        host = f"127.0.0.1:{free_port()}" if refused_by == "nothing listens" else reference_app.host
        socket = Socket(f"ws://{host}/socket", params={"token": "bad"}, transport=transport.name, jitter=0)
        socket.on_close(closed)
        await socket.connect()
        try:
            await asyncio.wait_for(enough.wait(), WAIT)
        finally:
            await socket.disconnect()
        gaps = [b - a for a, b in itertools.pairwise(closes[: len(steps) + 1])]
        # Each gap is at least its step (plus the time a refusal takes).
        for gap, step in zip(gaps, steps, strict=True):
            assert gap >= step * 0.9
        assert socket.connections == 0
        assert not socket.is_connected

    run(main)


# -- presence --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_presence_with_two_clients(reference_app: RunningApp, transport: TransportCase) -> None:
    async def main() -> None:
        topic = f"room:presence-{transport.name}"
        async with client(reference_app, "alice", transport) as one, client(reference_app, "bob", transport) as two:
            first = one.channel(topic, {"device": "d1"})
            presence = Presence(first)
            changed = asyncio.Event()
            joins: list[str] = []
            leaves: list[str] = []
            presence.on_sync(changed.set)
            presence.on_join(lambda key, current, new: joins.append(key))
            presence.on_leave(lambda key, current, left: leaves.append(key))
            await first.join()
            await wait_until(lambda: sorted(presence.state) == ["alice"], changed)

            second = two.channel(topic, {"device": "d2"})
            await second.join()
            await wait_until(lambda: sorted(presence.state) == ["alice", "bob"], changed)
            devices = presence.list(lambda key, p: (key, [m["device"] for m in p["metas"]]))
            assert sorted(devices) == [("alice", ["d1"]), ("bob", ["d2"])]

            await second.leave()
            await wait_until(lambda: sorted(presence.state) == ["alice"], changed)
            assert "bob" in joins
            assert leaves == ["bob"]

    run(main)


# -- presence with three users ---------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_presence_with_three_users(reference_app: RunningApp, transport: TransportCase) -> None:
    """Three clients on one topic: each one's Presence syncs to all three users; when
    the third leaves, the other two see it leave and their lists are right."""

    async def main() -> None:
        topic = f"room:three-{transport.name}"
        users = ("alice", "bob", "carol")
        async with contextlib.AsyncExitStack() as stack:
            changed = asyncio.Event()
            channels, presences = {}, {}
            joins: dict[str, list[str]] = {user: [] for user in users}
            leaves: dict[str, list[str]] = {user: [] for user in users}

            def record(into: list[str], key: str, current: object, presence: object) -> None:
                into.append(key)

            for user in users:
                socket = await stack.enter_async_context(client(reference_app, user, transport))
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


@pytest.mark.parametrize(("transport", "vsn"), VARIANTS)
def test_every_event_of_the_reference_app(reference_app: RunningApp, transport: TransportCase, vsn: str) -> None:
    """Two clients on one topic: join ok and refused, every ``handle_in`` event, server
    pushes, shouts, the HTTP broadcast route, a crash (rejoin with a new join_ref) and a
    stop (closed for good) — over ``transport`` with ``vsn``."""

    async def main() -> None:
        name = f"every-{transport.name}-{vsn}"
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
                with pytest.raises(ClientEncodeError):
                    await channel.push("binary", b"\x01")
            elif transport is WEBSOCKET:
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


# -- the WebSocket client against fake servers ---------------------------------------


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
        with pytest.raises(ClientEncodeError):
            await unencodable
        await socket.connect()
        try:
            with pytest.raises(ClientEncodeError):
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


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refused_connection_is_raised_at_once_for_what_it_is(
    reference_app: RunningApp, transport: TransportCase
) -> None:
    async def main() -> tuple[ConnectFailed, list[ConnectFailed], float]:
        seen: list[ConnectFailed] = []
        socket = Socket(f"ws://{reference_app.host}/socket", params={"token": "bad"}, transport=transport.name)
        socket.on_error(seen.append)
        async with socket:
            started = asyncio.get_running_loop().time()
            with pytest.raises(ConnectFailed) as raised:
                await socket.wait_connected(WAIT)
            return raised.value, seen, asyncio.get_running_loop().time() - started

    failure, seen, took = run(main)
    assert failure.status == 403
    assert failure.definitive
    assert "refused the connection (403" in str(failure)
    assert "token=bad" not in str(failure)  # the params (a token) are not echoed
    assert seen
    assert seen[0].retry_in is not None
    assert took < WAIT / 2
