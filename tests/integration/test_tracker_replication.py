"""Tracker shards replicating through the `Replicator` interface: docs/protocol.md §7.4-7.6.

Two or three trackers run on one node, each with its own replica name, wired by a `Hub`
that routes their messages (heartbeats to every other tracker, transfers to one) with
fault injection: a test decides per message and destination to drop it, duplicate it or
delay it. Every tracker's ``handle_diff`` sends its diffs to the test process, which waits
on them (never on a sleep) with one bounded deadline per step.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from time import monotonic
from typing import Any

from testkit import UNIT, Runner

from alight.actors import Pid, Supervisor, receive, self_pid, send, spawn, trap_exit
from alight.actors import exit as exit_process
from alight.channels.presence import Heartbeat, Tracker, TrackerSettings
from alight.channels.presence._replication import (
    GracefulPermdown,
    ReplicaMessage,
    TransferAck,
    TransferReq,
)
from alight.channels.presence.tracker import Diffs, Meta

TOPIC = "room:lobby"
WAIT = 2.0 * UNIT


def settings(**overrides: Any) -> TrackerSettings:
    """Fast periods: a tick every 20 ms, down after 0.3 s, permdown after 5 s."""
    base: dict[str, Any] = {
        "broadcast_period": 0.02 * UNIT,
        "max_silent_periods": 2,
        "down_period": 0.3 * UNIT,
        "permdown_period": 5.0 * UNIT,
        "clock_sample_periods": 2,
        "diff_period": 0.0,
    }
    return TrackerSettings(**{**base, **overrides})


Fault = Callable[[ReplicaMessage, str], list[float]]
"""(message, destination name) -> delays of its deliveries: [] drops, [0, 0] duplicates."""


def deliver_once(message: ReplicaMessage, to: str) -> list[float]:
    return [0.0]


class Hub:
    """Routes messages between trackers on this node, by replica name."""

    def __init__(self) -> None:
        self.trackers: dict[str, Tracker] = {}
        self.fault: Fault = deliver_once
        self.log: list[tuple[str, ReplicaMessage]] = []
        """Every message delivered (destination, message), after faults."""
        self.watcher: Pid | None = None
        """Gets ``("routed", sender, message)`` for every message sent."""

    def port(self, name: str) -> Port:
        return Port(self, name)

    def route(self, sender: str, to: list[str], message: ReplicaMessage) -> None:
        if self.watcher is not None:
            send(self.watcher, ("routed", sender, message))
        for dest in to:
            tracker = self.trackers.get(dest)
            if tracker is None or dest == sender:
                continue
            for delay in self.fault(message, dest):
                if delay:
                    asyncio.get_running_loop().call_later(delay, self._deliver, dest, message)
                else:
                    self._deliver(dest, message)

    def _deliver(self, dest: str, message: ReplicaMessage) -> None:
        tracker = self.trackers.get(dest)
        if tracker is not None:
            self.log.append((dest, message))
            tracker.deliver(message)

    def received(self, dest: str, kind: type[Any]) -> list[Any]:
        return [m for d, m in self.log if d == dest and type(m) is kind]


class Port:
    """One tracker's `PermdownReplicator`: what it sends goes through the hub."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub, self.name = hub, name

    def publish(self, heartbeat: Heartbeat) -> None:
        self.hub.route(self.name, list(self.hub.trackers), heartbeat)

    def transfer_req(self, shard: str, to: Any, ref: int, request: TransferReq) -> None:
        self.hub.route(self.name, [to.name], request)

    def transfer_ack(self, shard: str, to: Any, ref: int, ack: TransferAck) -> None:
        self.hub.route(self.name, [to.name], ack)

    def graceful_permdown(self, message: GracefulPermdown) -> None:
        self.hub.route(self.name, list(self.hub.trackers), message)


async def start(hub: Hub, name: str, tracker_settings: TrackerSettings | None = None) -> tuple[Tracker, Pid]:
    """Start tracker ``name`` (replica name too); its diffs come to the caller as
    ``("diff", name, diffs)``. Returns it and its supervisor."""
    me = self_pid()

    def handle_diff(diffs: Diffs) -> None:
        send(me, ("diff", name, diffs))

    tracker = Tracker("presence", handle_diff, tracker_settings or settings(), hub.port(name), replica_name=name)
    hub.trackers[name] = tracker
    VIEWS[name] = {}
    sup = await Supervisor.start_link([tracker.child_spec()])
    return tracker, sup


async def sleeper() -> None:
    await receive(lambda m: m == "stop")


async def track(tracker: Tracker, key: str, meta: Meta | None = None) -> Pid:
    pid = spawn(sleeper)
    await tracker.track(pid, TOPIC, key, dict(meta or {}))
    return pid


def keys(tracker: Tracker) -> list[str]:
    return sorted(key for key, _meta in tracker.list(TOPIC))


VIEWS: dict[str, dict[str, int]] = {}
"""Tracker name -> key -> metas present, as its diffs tell (reset by `start`)."""


def view(name: str) -> list[str]:
    """The keys tracker ``name`` has announced (its diffs so far), sorted."""
    return sorted(key for key, count in VIEWS.get(name, {}).items() if count > 0)


def is_diff(message: Any) -> bool:
    return isinstance(message, tuple) and len(message) == 3 and message[0] == "diff"


async def until(condition: Callable[[], bool], timeout: float = WAIT, what: str = "") -> list[tuple[str, Diffs]]:
    """Wait, diff by diff, until ``condition()`` (on `view`s: the state changes before
    its diff is sent); returns the diffs seen meanwhile."""
    deadline = monotonic() + timeout
    seen: list[tuple[str, Diffs]] = []
    while not condition():
        left = deadline - monotonic()
        assert left > 0, f"timed out waiting for {what or condition}"
        # Polled as well, for conditions that no diff announces (a permdown, a restart).
        message = await receive(is_diff, min(left, 0.05 * UNIT), None)
        if message is not None:
            _, name, diffs = message
            seen.append((name, diffs))
            counts = VIEWS.setdefault(name, {})
            for joins, leaves in diffs.values():
                for key, _meta in joins:
                    counts[key] = counts.get(key, 0) + 1
                for key, _meta in leaves:
                    counts[key] = counts.get(key, 0) - 1
    return seen


def changes(seen: list[tuple[str, Diffs]], name: str, joined: bool) -> list[str]:
    """Keys that joined (or left) in the diffs of tracker ``name``."""
    return [key for who, diffs in seen if who == name for key, _ in diffs.get(TOPIC, ([], []))[0 if joined else 1]]


def replicas_in(tracker: Tracker) -> set[str]:
    """Replica names whose values the shard stores, hidden ones included."""
    shard = tracker._shards[0]
    assert shard is not None
    return {dot[0].name for *_rest, dot in shard.state.values(include_down=True)}


# -- tests ---------------------------------------------------------------------------------------


def test_a_new_replica_receives_the_state_by_transfer(run: Runner) -> None:
    async def main() -> None:
        hub = Hub()
        hub.watcher = self_pid()
        a, _ = await start(hub, "a")
        for n in range(3):
            await track(a, f"u{n}")
        # Start b once a's deltas have gone (to nobody).
        me = a.replica(0)
        assert me is not None

        def last_delta(m: Any) -> bool:
            hb = m[2] if m[0] == "routed" else None
            return type(hb) is Heartbeat and hb.delta is not None and hb.delta.end.get(me) == 3

        await receive(last_delta, WAIT)
        await start(hub, "b")
        b = hub.trackers["b"]
        await until(lambda: view("b") == ["u0", "u1", "u2"], what="b to list a's presences")
        # Tracked before b existed: nothing came in a heartbeat delta, all by transfer.
        assert all(hb.delta is None for hb in hub.received("b", Heartbeat))
        assert hub.received("b", TransferAck)
        assert hub.received("a", TransferReq)[0].replica == b.replica(0)

    run(main)


def test_a_dropped_heartbeat_is_repaired_by_a_later_transfer(run: Runner) -> None:
    async def main() -> None:
        hub = Hub()
        dropped: list[Heartbeat] = []

        def drop_first_delta(message: ReplicaMessage, to: str) -> list[float]:
            if type(message) is Heartbeat and message.delta is not None and not dropped:
                dropped.append(message)
                return []
            return [0.0]

        a, _ = await start(hub, "a")
        b, _ = await start(hub, "b")
        await until(lambda: b.replica(0) is not None and a.replica(0) is not None)
        hub.fault = drop_first_delta
        await track(a, "lost")
        seen = await until(lambda: view("b") == ["lost"], what="the transfer to repair the lost delta")
        assert dropped
        assert dropped[0].delta is not None
        assert changes(seen, "b", joined=True) == ["lost"]
        assert hub.received("b", TransferAck)

    run(main)


def test_a_silent_replica_goes_down_then_comes_back_before_permdown(run: Runner) -> None:
    async def main() -> None:
        hub = Hub()
        a, _ = await start(hub, "a")
        b, _ = await start(hub, "b")
        await track(a, "alice", {"on": "a"})
        await until(lambda: view("b") == ["alice"])
        hub.fault = lambda m, to: [] if to == "b" else [0.0]  # a falls silent for b
        seen = await until(lambda: view("b") == [], what="a to go down on b")
        assert changes(seen, "b", joined=False) == ["alice"]
        assert replicas_in(b) == {"a"}  # hidden, not deleted
        hub.fault = deliver_once
        seen = await until(lambda: view("b") == ["alice"], what="a to come back up on b")
        assert changes(seen, "b", joined=True) == ["alice"]
        assert b.list(TOPIC) == a.list(TOPIC)

    run(main)


def test_permdown_removes_a_silent_replica_for_good(run: Runner) -> None:
    async def main() -> None:
        trap_exit(True)
        hub = Hub()
        fast = settings(permdown_period=0.6 * UNIT)
        a, a_sup = await start(hub, "a", fast)
        b, _ = await start(hub, "b", fast)
        await track(a, "alice")
        await track(b, "bob")
        await until(lambda: view("b") == ["alice", "bob"])
        exit_process(a_sup, "kill")  # no graceful permdown: a just falls silent
        del hub.trackers["a"]
        down_at = monotonic()
        seen = await until(lambda: view("b") == ["bob"], what="a to go down")
        assert changes(seen, "b", joined=False) == ["alice"]
        await until(lambda: replicas_in(b) == {"b"}, what="a's values to be deleted")
        assert monotonic() - down_at >= 0.3 * UNIT
        shard = b._shards[0]
        assert shard is not None
        assert {r.name for r in shard.state.replicas} == {"b"}
        assert all(r.name != "a" for g in shard.core.generations.generations for r in g.end)
        # A newcomer gets b's state by transfer, with nothing of a in it.
        c, _ = await start(hub, "c", fast)
        await until(lambda: view("c") == ["bob"], what="c to get b's state")
        assert replicas_in(c) == {"b"}

    run(main)


def test_a_restarted_replica_replaces_the_old_one_without_ghosts(run: Runner) -> None:
    async def main() -> None:
        trap_exit(True)
        hub = Hub()
        a, _ = await start(hub, "a")
        b, _ = await start(hub, "b")
        await track(a, "old")
        await until(lambda: view("b") == ["old"])
        old_replica = a.replica(0)
        stale = [m for d, m in hub.log if d == "b" and type(m) is Heartbeat and m.delta is not None]
        shard = a._shards[0]
        assert shard is not None
        assert stale
        exit_process(shard.pid, "kill")  # its supervisor restarts it: same name, new vsn
        seen = await until(lambda: a.replica(0) not in (None, old_replica), what="the shard to restart")
        await track(a, "new")
        seen += await until(lambda: view("b") == ["new"], what="the new incarnation to replace the old")
        assert changes(seen, "b", joined=False) == ["old"]
        assert changes(seen, "b", joined=True) == ["new"]
        # A late heartbeat of the old incarnation changes nothing (no flip back, no ghost).
        b.deliver(stale[0])
        await until(lambda: a.list(TOPIC) == b.list(TOPIC))
        assert not await receive(lambda m: is_diff(m) and m[1] == "b", 0.2 * UNIT, None)
        assert keys(b) == ["new"]
        b_shard = b._shards[0]
        assert b_shard is not None
        assert set(b_shard.state.replicas) == {b.replica(0), a.replica(0)}

    run(main)


def test_graceful_permdown_drops_presences_at_once(run: Runner) -> None:
    async def main() -> None:
        hub = Hub()
        hub.fault = lambda m, to: [0.0, 0.0]  # every message twice
        slow_down = settings(down_period=10.0 * UNIT, permdown_period=20.0 * UNIT, permdown_on_shutdown=True)
        a, a_sup = await start(hub, "a", slow_down)
        b, _ = await start(hub, "b", slow_down)
        await track(a, "alice")
        await until(lambda: view("b") == ["alice"])
        stopped_at = monotonic()
        trap_exit(True)
        await Supervisor.stop(a_sup, "shutdown")
        seen = await until(lambda: view("b") == [], timeout=1.0 * UNIT, what="the graceful permdown")
        assert monotonic() - stopped_at < 1.0 * UNIT  # not after down_period (10 s)
        assert changes(seen, "b", joined=False) == ["alice"]
        assert replicas_in(b) == set()
        assert len(hub.received("b", GracefulPermdown)) == 2

    run(main)


def test_three_trackers_converge_despite_dropped_duplicated_and_delayed_heartbeats(run: Runner) -> None:
    async def main() -> None:
        hub = Hub()
        rnd = random.Random(7)

        def chaos(message: ReplicaMessage, to: str) -> list[float]:
            if type(message) is not Heartbeat:
                return [0.0]
            roll = rnd.random()
            if roll < 0.3:
                return []
            if roll < 0.45:
                return [0.0, 0.0]
            if roll < 0.6:
                return [rnd.uniform(0.01, 0.1) * UNIT]
            return [0.0]

        hub.fault = chaos
        trackers = [(await start(hub, name))[0] for name in "abc"]
        pids: dict[str, Pid] = {}
        for n in range(12):
            tracker = trackers[n % 3]
            pids[f"u{n}"] = await track(tracker, f"u{n}", {"n": n})
        for n in (1, 5, 9):
            await trackers[n % 3].untrack(pids[f"u{n}"], TOPIC, f"u{n}")
        await trackers[0].update(pids["u0"], TOPIC, "u0", {"n": "zero"})
        expected = sorted(f"u{n}" for n in range(12) if n not in (1, 5, 9))

        def converged() -> bool:
            lists = [sorted((k, m["phx_ref"]) for k, m in t.list(TOPIC)) for t in trackers]
            views = all(view(name) == expected for name in "abc")
            return views and all(keys(t) == expected for t in trackers) and lists[0] == lists[1] == lists[2]

        await until(converged, timeout=3 * WAIT, what="convergence")
        assert next(m for k, m in trackers[2].list(TOPIC) if k == "u0")["n"] == "zero"

    run(main)
