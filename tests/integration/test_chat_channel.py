"""The chat of ``alight demo`` through `alight.channels.testing` (no network): joins,
presence per device, messages relayed with the node's name, the history a rejoin
gets, the limits, and the three crash buttons (``kill_node`` with a stand-in that
only reports, so the test process survives)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from testkit import UNIT, Runner
from testkit.processes import RunningApp, running_app
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as connect_ws
from websockets.exceptions import ConnectionClosed

from alight.actors import Down, current_node, monitor, receive, self_pid
from alight.channels.testing import TestClient, connect, start_endpoint
from alight.demo.chat import ChatEndpoint, ChatLimits, ChatSocket

TOPIC = "room:lobby"
NODE = "test@127.0.0.1"


async def started(**settings: Any) -> ChatEndpoint:
    app = ChatEndpoint(**settings)
    await start_endpoint(app)
    return app


async def joined(app: ChatEndpoint, name: str, device: str = "d1", topic: str = TOPIC) -> tuple[TestClient, Any]:
    """A client named ``name`` in ``topic``: its join reply and its presence_state."""
    client = await connect(app, ChatSocket, {"name": name, "device": device})
    status, reply = await client.join(topic)
    assert status == "ok", reply
    state = await client.assert_push(topic, "presence_state", timeout=2 * UNIT)
    return client, (reply, state.payload)


def test_join_replies_with_the_node_and_tracks_the_device(run: Runner) -> None:
    async def main() -> None:
        app = await started()
        _client, (reply, state) = await joined(app, "  alice ", "laptop")
        assert reply == {"room": "lobby", "name": "alice", "node": NODE, "history": []}
        [meta] = state["alice"]["metas"]
        assert (meta["device"], meta["node"]) == ("laptop", NODE)
        _bob, (_, state) = await joined(app, "bob", "phone")
        assert sorted(state) == ["alice", "bob"]
        _alice_again, (_, state) = await joined(app, "alice", "phone")
        assert sorted(m["device"] for m in state["alice"]["metas"]) == ["laptop", "phone"]

    run(main)


def test_new_msg_is_broadcast_with_the_sender_and_the_relaying_node(run: Runner) -> None:
    async def main() -> None:
        app = await started()
        alice, _ = await joined(app, "alice")
        bob, _ = await joined(app, "bob")
        ref = alice.push(TOPIC, "new_msg", {"body": "  hello  "})
        reply = await alice.assert_reply(ref, "ok")
        pushed = await bob.assert_push(TOPIC, "new_msg")
        message = pushed.payload
        assert message["id"] == reply.payload["id"]
        assert (message["name"], message["body"], message["node"]) == ("alice", "hello", NODE)
        assert isinstance(message["at"], int)

    run(main)


def test_a_join_gets_the_room_history_bounded(run: Runner) -> None:
    async def main() -> None:
        app = await started(limits=ChatLimits(history=3, burst=10))
        alice, _ = await joined(app, "alice")
        for n in range(5):
            await alice.assert_reply(alice.push(TOPIC, "new_msg", {"body": f"m{n}"}), "ok")
            pushed = await alice.assert_push(TOPIC, "new_msg")
            assert pushed.payload["body"] == f"m{n}"
        _bob, (reply, _) = await joined(app, "bob")
        assert [m["body"] for m in reply["history"]] == ["m2", "m3", "m4"]
        _carol, (other_room, _) = await joined(app, "carol", topic="room:other")
        assert other_room["history"] == []

    run(main)


def test_bad_names_devices_and_rooms_get_clear_join_errors(run: Runner) -> None:
    async def main() -> None:
        app = await started()
        cases = [
            ({"device": "d1"}, TOPIC, "a name is required"),
            ({"name": "x" * 25, "device": "d1"}, TOPIC, "names are at most 24 characters"),
            ({"name": "a\x07b", "device": "d1"}, TOPIC, "control characters"),
            ({"name": "alice"}, TOPIC, "a device id is required"),
            ({"name": "alice", "device": "no spaces"}, TOPIC, "device ids are 1-64"),
            ({"name": "alice", "device": "d1"}, "room:Has Space", "room names are 1-32"),
            ({"name": "alice", "device": "d1"}, "room:" + "r" * 33, "room names are 1-32"),
        ]
        for params, topic, reason in cases:
            client = await connect(app, ChatSocket, params)
            status, reply = await client.join(topic)
            assert status == "error", (params, topic)
            assert reason in reply["reason"], (params, reply)
        # The connection is still usable with good input elsewhere: nothing was lost.
        _client, (reply, _) = await joined(app, "alice")
        assert reply["name"] == "alice"

    run(main)


def test_bad_messages_and_floods_get_clear_errors(run: Runner) -> None:
    async def main() -> None:
        app = await started(limits=ChatLimits(max_message=10, burst=2, per_second=0.001))
        alice, _ = await joined(app, "alice")
        bob, _ = await joined(app, "bob")
        for payload, reason in [
            ({"body": "   "}, "empty messages are not sent"),
            ({"body": "x" * 11}, "messages are at most 10 characters"),
            ({"text": "hi"}, 'new_msg takes {"body": "some text"}'),
            ("hi", 'new_msg takes {"body": "some text"}'),
        ]:
            reply = await alice.assert_reply(alice.push(TOPIC, "new_msg", payload), "error")
            assert reply.payload == {"reason": reason}
        for n in range(2):
            await alice.assert_reply(alice.push(TOPIC, "new_msg", {"body": f"ok {n}"}), "ok")
        flood = await alice.assert_reply(alice.push(TOPIC, "new_msg", {"body": "too many"}), "error")
        assert flood.payload["reason"].startswith("slow down: at most 2 messages at once")
        # Bob's own bucket is untouched by Alice's flood.
        await bob.assert_reply(bob.push(TOPIC, "new_msg", {"body": "bob"}), "ok")
        unknown = await alice.assert_reply(alice.push(TOPIC, "shout", {}), "error")
        assert unknown.payload == {"reason": "unknown event 'shout'"}

    run(main)


def test_the_rate_is_per_connection_so_rejoining_or_more_rooms_do_not_reset_it(run: Runner) -> None:
    async def main() -> None:
        app = await started(limits=ChatLimits(burst=2, per_second=0.001))
        alice, _ = await joined(app, "alice")
        for n in range(2):
            await alice.assert_reply(alice.push(TOPIC, "new_msg", {"body": f"ok {n}"}), "ok")
        await alice.leave(TOPIC)
        status, _ = await alice.join(TOPIC)
        assert status == "ok"
        again = await alice.assert_reply(alice.push(TOPIC, "new_msg", {"body": "after a rejoin"}), "error")
        assert again.payload["reason"].startswith("slow down")
        status, _ = await alice.join("room:other")
        assert status == "ok"
        other = await alice.assert_reply(alice.push("room:other", "new_msg", {"body": "another room"}), "error")
        assert other.payload["reason"].startswith("slow down")
        # Another connection of the same user has its own bucket.
        phone, _ = await joined(app, "alice", "phone")
        await phone.assert_reply(phone.push(TOPIC, "new_msg", {"body": "from the phone"}), "ok")

    run(main)


def test_joins_are_rate_limited_per_connection(run: Runner) -> None:
    """A join/leave (or crash/rejoin) loop would send a presence diff to everyone in
    the room per cycle: past ``join_burst`` a connection's joins are refused."""

    async def main() -> None:
        app = await started(limits=ChatLimits(join_burst=3, joins_per_second=0.001))
        alice, _ = await joined(app, "alice")
        await alice.leave(TOPIC)
        status, _ = await alice.join("room:other")
        assert status == "ok"
        alice.push("room:other", "crash_channel", {})
        await alice.assert_push("room:other", "phx_error")
        status, _ = await alice.join("room:other")
        assert status == "ok"  # the third join: within the burst
        status, reply = await alice.join(TOPIC)
        assert status == "error"
        assert reply["reason"].startswith("slow down: at most 3 joins at once")
        # Others are not affected: another connection joins, and alice's refusal sent
        # no presence to the room.
        bob, (_, state) = await joined(app, "bob")
        assert sorted(state) == ["bob"]
        await bob.assert_reply(bob.push(TOPIC, "new_msg", {"body": "hi"}), "ok")

    run(main)


def test_crash_channel_errors_the_channel_and_a_rejoin_works(run: Runner) -> None:
    async def main() -> None:
        app = await started()
        alice, (_, state) = await joined(app, "alice")
        alice.push(TOPIC, "crash_channel", {})
        await alice.assert_push(TOPIC, "phx_error")
        status, reply = await alice.join(TOPIC)
        assert (status, reply["node"]) == ("ok", NODE)
        rejoined = await alice.assert_push(TOPIC, "presence_state")
        old_ref = state["alice"]["metas"][0]["phx_ref"]
        assert [m["phx_ref"] for m in rejoined.payload["alice"]["metas"]] != [old_ref]
        await alice.assert_reply(alice.push(TOPIC, "new_msg", {"body": "still here"}), "ok")

    run(main)


def test_crash_socket_replies_then_the_socket_process_exits_abnormally(run: Runner) -> None:
    async def main() -> None:
        app = await started()
        alice, _ = await joined(app, "alice")
        watch = monitor(alice.socket_pid)
        reply = await alice.assert_reply(alice.push(TOPIC, "crash_socket", {}), "ok")
        assert reply.payload == {"node": NODE}
        down = await receive(lambda m: type(m) is Down and m.ref == watch, 2 * UNIT)
        assert down.reason == "crash_socket_requested"

    run(main)


def test_kill_node_replies_notifies_the_room_then_kills(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        node = current_node()

        def stand_in() -> None:
            node.send(me, "node killed")

        app = await started(kill_node=stand_in)
        alice, _ = await joined(app, "alice")
        bob, _ = await joined(app, "bob")
        reply = await alice.assert_reply(alice.push(TOPIC, "kill_node", {}), "ok")
        assert reply.payload == {"node": NODE}
        notice = await bob.assert_push(TOPIC, "notice")
        assert notice.payload == {"text": f"alice killed {NODE}"}
        assert await receive(lambda m: m == "node killed", 2 * UNIT) == "node killed"

    run(main)


@pytest.mark.slow  # the chat in its own OS process
def test_a_huge_frame_closes_only_its_own_connection(tmp_path: Path) -> None:
    """The chat served for real (its own OS process): a 1 MB frame closes the sender's
    WebSocket with 1009 before it is parsed; another client in the room goes on."""

    async def main(app: RunningApp) -> None:
        url = f"ws://{app.host}/socket/websocket?name=bob&device=d2&vsn=2.0.0"
        async with connect_ws(url) as bob, connect_ws(url.replace("bob", "mallory")) as mallory:
            await bob.send(json.dumps(["1", "1", TOPIC, "phx_join", {}]))
            await mallory.send(json.dumps(["1", "1", TOPIC, "phx_join", {}]))
            with pytest.raises(ConnectionClosed) as closed:
                await send_then_read(mallory, json.dumps(["1", "2", TOPIC, "new_msg", {"body": "x" * 1_000_000}]))
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009
            await bob.send(json.dumps(["1", "3", TOPIC, "new_msg", {"body": "still here"}]))
            while True:
                frame = json.loads(await asyncio.wait_for(bob.recv(), 5 * UNIT))
                if frame[3] == "new_msg":
                    assert frame[4]["body"] == "still here"
                    return

    async def send_then_read(ws: ClientConnection, frame: str) -> None:
        # The server may close (1009) while the frame is still being sent: then the
        # send itself raises, having received the close.
        await ws.send(frame)
        await read_until_closed(ws)

    async def read_until_closed(ws: ClientConnection) -> None:
        while True:
            await asyncio.wait_for(ws.recv(), 5 * UNIT)

    with running_app("testkit.apps.chat:served_chat", tmp_path / "chat.log") as app:
        asyncio.run(asyncio.wait_for(main(app), 30 * UNIT))
