"""Presence through `alight.channels.testing` (no network): docs/protocol.md §6.

The reference app's room channel tracks every joiner (key = user_id, meta
``{"device": ...}``) and pushes ``presence_state``; every change reaches the room as
one ``presence_diff`` per batch. Other tests track plain processes with
``track(pid, topic, key, meta)``.
"""

from __future__ import annotations

from typing import Any

import pytest
from testkit import UNIT, Runner

from alight.actors import Pid, receive, self_pid, spawn
from alight.actors import exit as exit_process
from alight.channels import Endpoint
from alight.channels.message import Broadcast, Message
from alight.channels.presence import (
    AlreadyTracked,
    Heartbeat,
    InvalidSettings,
    NoPresence,
    Presence,
    Presences,
    TrackerSettings,
)
from alight.channels.testing import TestClient, connect, start_endpoint
from alight.examples.reference import UserSocket

WAIT = 1.0 * UNIT
SHORT = 0.2 * UNIT
TOPIC = "room:lobby"


async def app_with(presence: type[Presence] | None = None) -> Endpoint:
    app = Endpoint(check_origin=False, presence=presence is None)
    if presence is not None:
        presence(app)
    await start_endpoint(app)
    return app


def presence_of(app: Endpoint) -> Presence:
    assert app.presence is not None
    return app.presence


async def joined(app: Endpoint, user: str, device: str = "d1") -> tuple[TestClient, Presences]:
    """A client of ``user`` joined to the room; returns it and its presence_state."""
    client = await connect(app, UserSocket, {"user_id": user})
    assert await client.join(TOPIC, {"device": device}) == ("ok", {"joined": "lobby"})
    state = await client.assert_push(TOPIC, "presence_state")
    return client, state.payload


async def diff(timeout: float = WAIT, kind: type[Message | Broadcast] = Message) -> dict[str, Any]:
    """The next presence_diff pushed to this process's client(s) (``kind=Broadcast``:
    received as the plain subscriber `TestClient.join` makes of the test process)."""
    message: Message | Broadcast = await receive(lambda m: type(m) is kind and m.event == "presence_diff", timeout)
    payload: dict[str, Any] = message.payload
    assert set(payload) == {"joins", "leaves"}
    return payload


async def no_diff(timeout: float = SHORT) -> None:
    found = await receive(lambda m: type(m) is Message and m.event == "presence_diff", timeout, None)
    assert found is None, f"unexpected presence_diff {found!r}"


def metas(presences: Presences, key: str) -> list[dict[str, Any]]:
    return list(presences[key]["metas"])


async def sleeper() -> None:
    await receive(lambda m: m == "stop")


# -- the reference app -----------------------------------------------------------------------


def test_join_tracks_pushes_state_and_broadcasts_a_diff(run: Runner) -> None:
    async def main() -> None:
        app = await app_with()
        _client, state = await joined(app, "alice", "phone")
        [meta] = metas(state, "alice")
        assert meta["device"] == "phone"
        assert isinstance(meta["phx_ref"], str)
        assert len(meta["phx_ref"]) == 16
        got = await diff()
        assert got == {"joins": {"alice": {"metas": [meta]}}, "leaves": {}}
        assert await presence_of(app).list(TOPIC) == state

    run(main)


def test_two_users_see_each_other(run: Runner) -> None:
    async def main() -> None:
        app = await app_with()
        alice, _ = await joined(app, "alice")
        await diff()
        _bob, state = await joined(app, "bob", "laptop")
        assert set(state) == {"alice", "bob"}
        got = await diff()  # both clients live in this process: one frame each
        assert set(got["joins"]) == {"bob"}
        assert got["leaves"] == {}
        again = await diff()
        assert again == got
        await alice.leave(TOPIC)
        left = await diff()
        assert set(left["leaves"]) == {"alice"}
        assert left["joins"] == {}
        assert set(await presence_of(app).list(TOPIC)) == {"bob"}

    run(main)


def test_one_user_on_two_sockets_is_one_key_with_two_metas(run: Runner) -> None:
    async def main() -> None:
        app = await app_with()
        await joined(app, "alice", "phone")
        await diff()
        second, state = await joined(app, "alice", "laptop")
        assert [m["device"] for m in metas(state, "alice")] == ["phone", "laptop"]
        got = await diff()
        assert [m["device"] for m in got["joins"]["alice"]["metas"]] == ["laptop"]
        await diff()
        second.close()
        left = await diff()
        assert [m["device"] for m in left["leaves"]["alice"]["metas"]] == ["laptop"]
        assert [m["device"] for m in metas(await presence_of(app).list(TOPIC), "alice")] == ["phone"]

    run(main)


def test_a_crashed_channel_leaves_and_its_rejoin_joins_again(run: Runner) -> None:
    async def main() -> None:
        app = await app_with()
        client, state = await joined(app, "alice")
        await diff()
        await diff(kind=Broadcast)
        client.push(TOPIC, "crash", {})
        await client.assert_push(TOPIC, "phx_error")
        left = await diff(kind=Broadcast)  # the only channel with a fastlane has gone
        assert left == {"joins": {}, "leaves": {"alice": {"metas": metas(state, "alice")}}}
        assert await presence_of(app).list(TOPIC) == {}
        assert await client.join(TOPIC, {"device": "d1"}) == ("ok", {"joined": "lobby"})
        rejoined = await client.assert_push(TOPIC, "presence_state")
        assert metas(rejoined.payload, "alice")[0]["phx_ref"] != metas(state, "alice")[0]["phx_ref"]

    run(main)


# -- the API -------------------------------------------------------------------------------------


def test_track_update_untrack_with_phx_ref_prev(run: Runner) -> None:
    async def main() -> None:
        app = await app_with()
        presence = presence_of(app)
        watcher = await connect(app, UserSocket, {"user_id": "watcher"})
        await watcher.join(TOPIC)
        await watcher.assert_push(TOPIC, "presence_state")
        await diff()
        pid = spawn(sleeper)
        ref = await presence.track(pid, TOPIC, "carol", {"status": "away"})
        with pytest.raises(AlreadyTracked):
            await presence.track(pid, TOPIC, "carol", {})
        got = await diff()
        assert got["joins"] == {"carol": {"metas": [{"status": "away", "phx_ref": ref}]}}
        new_ref = await presence.update(pid, TOPIC, "carol", lambda meta: {**meta, "status": "here"})
        assert new_ref != ref
        updated = await diff()
        assert updated == {
            "joins": {"carol": {"metas": [{"status": "here", "phx_ref": new_ref, "phx_ref_prev": ref}]}},
            "leaves": {"carol": {"metas": [{"status": "away", "phx_ref": ref}]}},
        }
        assert await presence.get_by_key(TOPIC, "carol") == updated["joins"]["carol"]
        with pytest.raises(NoPresence):
            await presence.update(pid, TOPIC, "nobody", {})
        await presence.untrack(pid, TOPIC, "carol")
        await presence.untrack(pid, TOPIC, "carol")  # untracking twice is fine
        gone = await diff()
        assert gone["joins"] == {}
        assert list(gone["leaves"]) == ["carol"]
        assert await presence.get_by_key(TOPIC, "carol") is None
        await no_diff()

    run(main)


def test_a_tracked_process_that_exits_leaves(run: Runner) -> None:
    async def main() -> None:
        app = await app_with()
        presence = presence_of(app)
        app.pubsub.subscribe(self_pid(), TOPIC)
        pids = [spawn(sleeper) for _ in range(3)]
        refs = [await presence.track(pid, TOPIC, f"u{n}", {"n": n}) for n, pid in enumerate(pids)]
        await receive(lambda m: getattr(m, "event", None) == "presence_diff", WAIT)
        exit_process(pids[1], "boom")
        broadcast = await receive(lambda m: getattr(m, "event", None) == "presence_diff", WAIT)
        assert broadcast.payload == {"joins": {}, "leaves": {"u1": {"metas": [{"n": 1, "phx_ref": refs[1]}]}}}
        assert sorted(await presence.list(TOPIC)) == ["u0", "u2"]

    run(main)


def test_many_joins_make_one_diff_per_topic(run: Runner) -> None:
    async def main() -> None:
        app = await app_with()
        presence = presence_of(app)
        watcher = await connect(app, UserSocket, {"user_id": "watcher"})
        await watcher.join(TOPIC)
        await watcher.assert_push(TOPIC, "presence_state")
        await diff()
        pids: list[Pid] = [spawn(sleeper) for _ in range(500)]
        for n, pid in enumerate(pids):
            await presence.track(pid, TOPIC, f"u{n}", {})
        joins: dict[str, Any] = {}
        diffs = 0
        while len(joins) < 500:
            got = await diff()
            joins.update(got["joins"])
            diffs += 1
        # One per 50 ms batch (asyncio debug mode makes each call slow): far fewer than 500.
        assert diffs <= 25, f"{diffs} presence_diff broadcasts for 500 joins"
        assert len(await presence.list(TOPIC)) == 501

    run(main)


class Enriching(Presence):
    calls: list[str]

    async def fetch(self, topic: str, presences: Presences) -> Presences:
        for key, entry in presences.items():
            entry["user"] = {"name": key.upper()}
        return presences


def test_fetch_enriches_list_state_and_diffs(run: Runner) -> None:
    async def main() -> None:
        app = await app_with(Enriching)
        _client, state = await joined(app, "alice")
        assert state["alice"]["user"] == {"name": "ALICE"}
        got = await diff()
        assert got["joins"]["alice"]["user"] == {"name": "ALICE"}
        listed = await presence_of(app).list(TOPIC)
        assert listed["alice"]["user"] == {"name": "ALICE"}
        assert await presence_of(app).get_by_key(TOPIC, "alice") == listed["alice"]

    run(main)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (TrackerSettings(broadcast_period=1.0, down_period=1.5), "down_period"),
        (TrackerSettings(down_period=30.0, permdown_period=30.0), "permdown_period"),
        (TrackerSettings(broadcast_period=0), "broadcast_period"),
        (TrackerSettings(pool_size=0), "pool_size"),
        (TrackerSettings(max_silent_periods=0), "max_silent_periods"),
    ],
)
def test_settings_are_validated_naming_the_field(settings: TrackerSettings, field: str) -> None:
    with pytest.raises(InvalidSettings, match=field) as caught:
        settings.validated()
    assert caught.value.field == field


def test_default_settings_follow_phoenix() -> None:
    settings = TrackerSettings().validated()
    assert (settings.broadcast_period, settings.down_period, settings.permdown_period) == (1.5, 30.0, 1200.0)


def test_a_pool_spreads_topics_and_heartbeats_are_published(run: Runner) -> None:
    async def main() -> None:
        app = Endpoint(check_origin=False)
        presence = Presence(app, settings=TrackerSettings(pool_size=4, broadcast_period=0.05, max_silent_periods=2))
        await start_endpoint(app)
        pids = [spawn(sleeper) for _ in range(20)]
        for n, pid in enumerate(pids):
            await presence.track(pid, f"room:{n}", "k", {})
        for n in range(20):
            assert list(await presence.list(f"room:{n}")) == ["k"]
        assert len({presence.tracker.shard_index(f"room:{n}") for n in range(20)}) > 1
        await receive(lambda m: False, 0.3 * UNIT, None)
        replicator: Any = presence.tracker.replicator
        assert replicator.published >= 4  # every shard announced itself, with its delta

    run(main)


class Wire:
    """A `Replicator` between two trackers on one node: heartbeats cross until cut."""

    def __init__(self) -> None:
        self.peer: Presence | None = None
        self.cut = False

    def publish(self, heartbeat: Heartbeat) -> None:
        if self.peer is not None and not self.cut:
            self.peer.tracker.deliver(heartbeat)

    def transfer_req(self, shard: str, to: Any, ref: Any, clocks: Any) -> None:
        return None

    def transfer_ack(self, shard: str, to: Any, ref: Any, state: Any) -> None:
        return None


def test_heartbeats_replicate_and_a_silent_replica_goes_down(run: Runner) -> None:
    async def main() -> None:
        fast = TrackerSettings(broadcast_period=0.05 * UNIT, max_silent_periods=1, down_period=0.3 * UNIT)
        a_to_b, b_to_a = Wire(), Wire()
        app_a, app_b = Endpoint(check_origin=False, name="a"), Endpoint(check_origin=False, name="b")
        a = Presence(app_a, name="presence", settings=fast, replicator=a_to_b)
        b = Presence(app_b, name="presence", settings=fast, replicator=b_to_a)
        a_to_b.peer, b_to_a.peer = b, a
        await start_endpoint(app_a)
        await start_endpoint(app_b)
        app_b.pubsub.subscribe(self_pid(), TOPIC)
        ref = await a.track(spawn(sleeper), TOPIC, "remote", {"on": "a"})
        got = await receive(lambda m: type(m) is Broadcast and m.event == "presence_diff", 2 * WAIT)
        assert got.payload == {"joins": {"remote": {"metas": [{"on": "a", "phx_ref": ref}]}}, "leaves": {}}
        assert await b.list(TOPIC) == got.payload["joins"]
        a_to_b.cut = True  # a falls silent: after down_period, b marks it down
        gone = await receive(lambda m: type(m) is Broadcast and m.event == "presence_diff", 3 * WAIT)
        assert gone.payload == {"joins": {}, "leaves": got.payload["joins"]}
        assert await b.list(TOPIC) == {}

    run(main)


def test_presence_state_is_encoded_once_per_change_of_the_topic(run: Runner) -> None:
    async def main() -> None:
        app = await app_with()
        presence = presence_of(app)
        await joined(app, "alice")
        await diff()
        state = await presence.state(TOPIC)
        assert await presence.state(TOPIC) is state  # shared until the topic changes
        assert set(state.decoded()) == {"alice"}
        await joined(app, "bob")
        await diff()
        changed = await presence.state(TOPIC)
        assert changed is not state
        assert set(changed.decoded()) == {"alice", "bob"}

    run(main)
