"""A deterministic simulation of presence under faults: the real shard cores, a
simulated network and clock, and clients with phoenix.js semantics.

FoundationDB's and TigerBeetle's way: the code that decides (`._shard.ShardCore`, with
its `State`, replica table, clock sampling, delta generations and netted `DiffBatch`,
and `Presence`'s grouping) runs unchanged; only time, the network and the schedule of
faults are simulated, all drawn from one seed, so a failing seed replays exactly::

    python -m alight.channels.presence.simulation --seed 1234 --trace
    python -m alight.channels.presence.simulation --seeds 10000       # a soak

What a run does: ``nodes`` nodes (one shard each) start; clients join topics on nodes
(subscribe, track a presence under a key, read the ``presence_state``), push updates
and leave; meanwhile the network drops, duplicates, delays and reorders messages,
links are cut (symmetric and asymmetric partitions) and healed, nodes are paused
(their clock runs on, their timers and inbox stop) and resumed, and crash and restart
with a new incarnation; with ``--drains`` (`Faults.with_drains`) nodes also drain as
`alight.channels.drainer` does (the replica leaves, then its clients, then it stops and
comes back). Then every fault heals and the run settles.

The invariants (`Violation` says which one broke; the numbers are issue 11's):

1. **Client view = server view**: every diff ever broadcast holds no ``phx_ref`` in
   both joins and leaves; at the end each client's view, built from the
   ``presence_state`` and ``presence_diff`` it received with phoenix.js 1.8's exact
   ``syncState``/``syncDiff``, equals its node's tracker view of the topic.
2. **Convergence**: after the last heal, every node's view of every topic equals the
   truth (the presences tracked on nodes that are up) within ``converge_within``
   seconds (2 s plus the time the heal takes to be seen); a crashed node leaves no
   ghost.
3. **No leave without a cause** (schedules whose only faults are pauses shorter than
   ``down_period``): no client is told of a leave, or a join, that no client caused.
4. **A drained node's presences go** (with drains): once a node drains, no other node
   lists its presences after ``down_period`` and a few heartbeats (a graceful permdown
   makes it at once; without it, its silence does).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import heapq
import json
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ...client.presence import State as PresenceState
from ...client.presence import sync_diff, sync_state
from ._diffs import Diffs
from ._replication import ReplicaMessage
from ._settings import TrackerSettings
from ._shard import AckTransfer, Effect, FlushAfter, Link, Publish, PublishPermdown, RequestTransfer, ShardCore, Unlink
from ._state import Replica

__all__ = [
    "Faults",
    "PresenceView",
    "Result",
    "SIM_SETTINGS",
    "Simulation",
    "Violation",
    "DOWN_PERIOD",
    "run_seed",
]

Meta = dict[str, Any]

DOWN_PERIOD = 3.0

SIM_SETTINGS = TrackerSettings(
    broadcast_period=0.5, max_silent_periods=2, down_period=DOWN_PERIOD, permdown_period=600.0, diff_period=0.05
).validated()
"""The cluster timing (`alight.cluster.presence.CLUSTER_TRACKER_SETTINGS`)."""


# -- a client with phoenix.js 1.8's Presence semantics ----------------------------------------


class PresenceView:
    """A client's ``Presence`` as phoenix.js 1.8 keeps it: the ``presence_state`` and
    ``presence_diff`` it receives applied with `alight.client`'s `sync_state` /
    `sync_diff` (phoenix.js's ``syncState``/``syncDiff``, joins then leaves, by
    ``phx_ref``), diffs that arrive before the state held and applied after it."""

    def __init__(self) -> None:
        self.state: PresenceState = {}
        self.pending: list[dict[str, Any]] = []
        self.synced = False

    def on_state(self, new_state: dict[str, Any]) -> None:
        self.state = sync_state(self.state, new_state)
        for diff in self.pending:
            self.state = sync_diff(self.state, diff)
        self.pending = []
        self.synced = True

    def on_diff(self, diff: dict[str, Any]) -> None:
        if not self.synced:
            self.pending.append(diff)
        else:
            self.state = sync_diff(self.state, diff)

    def refs(self) -> dict[str, frozenset[str]]:
        """``key -> {phx_ref}``: what the client lists."""
        return {key: frozenset(m["phx_ref"] for m in p["metas"]) for key, p in self.state.items()}


def group(entries: Iterable[tuple[str, Meta]]) -> dict[str, dict[str, Any]]:
    """Presence's grouping: ``{key: {"metas": [...]}}`` (as `presence._group`)."""
    grouped: dict[str, dict[str, Any]] = {}
    for key, meta in entries:
        grouped.setdefault(key, {"metas": []})["metas"].append(meta)
    return grouped


def _refs(entries: Iterable[tuple[str, Meta]]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for key, meta in entries:
        out.setdefault(key, set()).add(meta["phx_ref"])
    return {key: frozenset(refs) for key, refs in out.items()}


# -- the schedule ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Faults:
    """How hostile a run is. Probabilities are per message or per step."""

    drop: float = 0.05
    duplicate: float = 0.03
    delay: tuple[float, float] = (0.001, 0.05)
    """Seconds a message takes, uniformly (unequal delays reorder messages)."""
    slow: float = 0.05
    """Probability of a message taking 10x the delay (heavy reordering)."""
    pause: float = 0.04
    pause_seconds: tuple[float, float] = (0.5, 8.0)
    partition: float = 0.03
    partition_seconds: tuple[float, float] = (0.5, 8.0)
    crash: float = 0.015
    restart_after: tuple[float, float] = (0.2, 5.0)
    drain: float = 0.0
    """Probability per step of a node draining (an orderly stop, `Drainer`): its replica
    leaves (a graceful permdown), its clients leave over ``drain_seconds``, it stops
    and later starts again. 0 by default: the schedules of kept seeds stay as they were
    (`with_drains` turns it on)."""
    drain_seconds: tuple[float, float] = (0.2, 10.0)
    """How long a drain takes (many outlast invariant 4's window, so that it is checked)."""

    def with_drains(self, probability: float = 0.02) -> Faults:
        """These faults and drains."""
        return dataclasses.replace(self, drain=probability)

    @classmethod
    def pauses_only(cls, longest: float) -> Faults:
        """Only pauses, each shorter than ``longest`` seconds; a perfect network."""
        return cls(0.0, 0.0, (0.001, 0.01), 0.0, 0.06, (0.2, longest), 0.0, (0.0, 0.0), 0.0, (0.0, 0.0))


_PERFECT = Faults(0.0, 0.0, (0.001, 0.01), 0.0, 0.0, (0.0, 0.0), 0.0, (0.0, 0.0), 0.0, (0.0, 0.0))


@dataclass(frozen=True)
class Violation:
    """An invariant that broke: which (1, 2, 3), when (simulated seconds) and what."""

    invariant: int
    at: float
    what: str


@dataclass
class Result:
    """What one seeded run found: its violations (none: every invariant held), its
    trace (one line per event, for replay and reading) and its figures."""

    seed: int
    violations: list[Violation]
    trace: list[str]
    converge_after_heal: float | None
    """Seconds from the last heal to every view agreeing with the truth."""
    diffs: int
    messages: int

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass
class _Client:
    id: int
    node: str
    topic: str
    key: str
    pid: tuple[str, int, int]
    view: PresenceView = field(default_factory=PresenceView)
    tracked: bool = False
    ref: str | None = None
    alive: bool = True


class _Node:
    def __init__(self, name: str) -> None:
        self.name = name
        self.core: ShardCore | None = None
        self.incarnation = 0
        self.paused_until: float | None = None
        self.backlog: list[Callable[[], None]] = []
        self.next_tick = 0.0
        self.flush_at: float | None = None
        self.dispatch_free = 0.0  # the dispatcher broadcasts batches one after another
        self.draining = False
        """Its replica left the cluster; it stops once its clients are gone."""
        self.resumed_at = -1e9
        """When it last resumed from a pause (its view of others' silence was excused)."""

    @property
    def up(self) -> bool:
        return self.core is not None


class Simulation:
    """One seeded run (module docstring). `run` returns a `Result`."""

    def __init__(
        self,
        seed: int,
        *,
        nodes: int = 3,
        topics: int = 2,
        keys: int = 3,
        duration: float = 20.0,
        faults: Faults | None = None,
        settings: TrackerSettings = SIM_SETTINGS,
        check_no_spurious: bool = False,
        converge_within: float = 2.0,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.settings = settings
        assert settings.down_period is not None, "validated settings"
        self.down_period = settings.down_period
        self.faults = faults if faults is not None else Faults()
        self.duration = duration
        self.check_no_spurious = check_no_spurious
        self.converge_within = converge_within
        self.nodes = {f"n{i}": _Node(f"n{i}") for i in range(nodes)}
        self.topics = [f"room:{i}" for i in range(topics)]
        self.keys = [f"user{i}" for i in range(keys)]
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.cut: set[tuple[str, str]] = set()
        self.clients: list[_Client] = []
        self.trace: list[str] = []
        self.violations: list[Violation] = []
        self._refs = 0
        self._pids = 0
        self.diffs = 0
        self.messages = 0
        self.dead_refs: set[str] = set()
        """phx_refs whose presence really ended (untracked, updated away, node crashed)."""
        self.healed = False
        """Every fault is over: no more drops, cuts, pauses or crashes."""

    # -- the event queue ---------------------------------------------------------------------

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, action))

    def log(self, text: str) -> None:
        self.trace.append(f"{self.now:8.3f} {text}")

    def _on_node(self, node: _Node, function: Callable[..., None], *args: Any) -> None:
        self.on(node, functools.partial(function, *args))

    def on(self, node: _Node, action: Callable[[], None]) -> None:
        """Run ``action`` on ``node`` now, or when it resumes if it is paused."""
        if node.paused_until is not None:
            node.backlog.append(action)
        else:
            action()

    # -- nodes -------------------------------------------------------------------------------

    def _make_ref(self) -> str:
        self._refs += 1
        return f"r{self._refs}"

    def start(self, node: _Node) -> None:
        node.incarnation += 1
        replica = Replica(node.name, node.incarnation)
        node.core = ShardCore(self.settings, "presence_shard0", replica, self.now, self._make_ref)
        node.flush_at = None
        node.draining = False
        node.next_tick = self.now + self.settings.broadcast_period * self.rng.uniform(0, 0.25)
        self.at(node.next_tick, functools.partial(self._on_node, node, self._tick, node, node.incarnation))
        self.log(f"{node.name} starts as incarnation {node.incarnation}")

    def _tick(self, node: _Node, incarnation: int) -> None:
        if node.core is None or node.incarnation != incarnation:
            return
        self.perform(node, node.core.tick(self.now))
        node.next_tick = self.now + self.settings.broadcast_period
        self.at(node.next_tick, functools.partial(self._on_node, node, self._tick, node, incarnation))

    def _flush(self, node: _Node, incarnation: int) -> None:
        if node.core is None or node.incarnation != incarnation:
            return
        for diffs in node.core.flush():
            self._dispatch(node, diffs)

    def _dispatch(self, node: _Node, diffs: Diffs) -> None:
        """Presence's dispatcher: one ``presence_diff`` per topic, after a short delay,
        batches in order (one process)."""
        when = max(self.now, node.dispatch_free) + self.rng.uniform(0, 0.005)
        node.dispatch_free = when
        incarnation = node.incarnation
        for topic, (joins, leaves) in diffs.items():
            payload = {"joins": group(joins), "leaves": group(leaves)}
            self.at(when, functools.partial(self._on_node, node, self._broadcast, node, incarnation, topic, payload))

    def _broadcast(self, node: _Node, incarnation: int, topic: str, payload: dict[str, Any]) -> None:
        if node.incarnation != incarnation or node.core is None:
            return
        self.diffs += 1
        joined = {m["phx_ref"] for p in payload["joins"].values() for m in p["metas"]}
        left = {m["phx_ref"] for p in payload["leaves"].values() for m in p["metas"]}
        both = joined & left
        if both:
            self.violate(1, f"{node.name} {topic}: a diff holds {sorted(both)} in both joins and leaves")
        self.log(f"{node.name} diff {topic} +{sorted(joined)} -{sorted(left)}")
        for client in self.clients:
            if client.alive and client.node == node.name and client.topic == topic:
                spurious = {r for r in left if r not in self.dead_refs}
                if self.check_no_spurious and spurious:
                    # (A join a client did not cause follows such a leave: leaves suffice.)
                    self.violate(
                        3, f"client {client.id} on {node.name} told of leaves {sorted(spurious)} nobody caused"
                    )
                client.view.on_diff(payload)

    def perform(self, node: _Node, effects: list[Effect]) -> None:
        core = node.core
        assert core is not None
        for effect in effects:
            if type(effect) is FlushAfter:
                node.flush_at = self.now + effect.delay
                self.at(node.flush_at, functools.partial(self._on_node, node, self._flush, node, node.incarnation))
            elif type(effect) is Publish:
                for other in self.nodes:
                    if other != node.name:
                        self.send(node.name, other, effect.heartbeat)
            elif type(effect) is PublishPermdown:
                for other in self.nodes:
                    if other != node.name:
                        self.send(node.name, other, effect.message)
            elif type(effect) is RequestTransfer:
                self.send(node.name, effect.to.name, effect.request)
            elif type(effect) is AckTransfer:
                self.send(node.name, effect.to.name, effect.ack)
            else:
                assert isinstance(effect, Link | Unlink)

    # -- the network -------------------------------------------------------------------------

    def send(self, src: str, dst: str, message: ReplicaMessage) -> None:
        faults = self.faults if not self.healed else _PERFECT
        rng = self.rng
        self.messages += 1
        if (src, dst) in self.cut or rng.random() < faults.drop:
            return
        copies = 2 if rng.random() < faults.duplicate else 1
        for _ in range(copies):
            delay = rng.uniform(*faults.delay)
            if rng.random() < faults.slow:
                delay *= 10
            self.at(self.now + delay, lambda: self._arrive(src, dst, message))

    def _arrive(self, src: str, dst: str, message: ReplicaMessage) -> None:
        node = self.nodes[dst]
        if (src, dst) in self.cut:
            return  # cut while in flight
        self.on(node, lambda: self._receive(node, message))

    def _receive(self, node: _Node, message: ReplicaMessage) -> None:
        if node.core is not None:
            self.perform(node, node.core.receive(message, self.now))

    # -- clients -------------------------------------------------------------------------------

    def join(self, node: _Node, topic: str, key: str) -> None:
        self._pids += 1
        client = _Client(len(self.clients), node.name, topic, key, (node.name, node.incarnation, self._pids))
        self.clients.append(client)
        self.log(f"client {client.id} joins {topic} on {node.name} as {key}")
        # Subscribed at the join; tracks and reads the state a moment later (after_join).
        self.at(self.now + self.rng.uniform(0, 0.02), lambda: self.on(node, lambda: self._after_join(node, client)))

    def _after_join(self, node: _Node, client: _Client) -> None:
        core = node.core
        if core is None or not client.alive or client.pid[1] != node.incarnation:
            return
        ref, effects = core.track(client.pid, client.topic, client.key, {"n": client.id})
        assert isinstance(ref, str)
        client.tracked, client.ref = True, ref
        self.perform(node, effects)
        client.view.on_state(group((k, m) for k, m, _ in core.presences(client.topic)))
        self.log(f"client {client.id} tracked {ref} and got its presence_state")

    def leave(self, client: _Client) -> None:
        node = self.nodes[client.node]
        core = node.core
        client.alive = False
        if core is None or client.pid[1] != node.incarnation:
            return
        if client.ref is not None:
            self.dead_refs.add(client.ref)
        self.perform(node, core.leave_pid(client.pid))
        self.log(f"client {client.id} leaves {client.topic} on {node.name}")

    def update(self, client: _Client) -> None:
        node = self.nodes[client.node]
        core = node.core
        if core is None or not client.tracked or client.pid[1] != node.incarnation:
            return
        ref, effects = core.update(client.pid, client.topic, client.key, lambda meta: {**meta, "v": self.now})
        assert isinstance(ref, str)
        if client.ref is not None:
            self.dead_refs.add(client.ref)
        client.ref = ref
        self.perform(node, effects)
        self.log(f"client {client.id} updates to {ref}")

    # -- faults ----------------------------------------------------------------------------------

    def pause(self, node: _Node, seconds: float) -> None:
        if node.paused_until is not None or self.healed:
            return
        node.paused_until = self.now + seconds
        self.log(f"{node.name} pauses for {seconds:.2f} s")
        self.at(node.paused_until, lambda: self.resume(node))

    def resume(self, node: _Node) -> None:
        if node.paused_until is None:
            return  # resumed already (by the final heal)
        node.paused_until = None
        node.resumed_at = self.now
        backlog, node.backlog = node.backlog, []
        # What piled up runs now: timers and messages in an order nobody promises.
        self.rng.shuffle(backlog)
        self.log(f"{node.name} resumes with {len(backlog)} events waiting")
        for action in backlog:
            self.on(node, action)

    def partition(self, links: set[tuple[str, str]], seconds: float) -> None:
        fresh = links - self.cut
        self.cut |= fresh
        self.log(f"cut {sorted(fresh)} for {seconds:.2f} s")
        self.at(self.now + seconds, lambda: self._heal(fresh))

    def _heal(self, links: set[tuple[str, str]]) -> None:
        if self.healed:
            return
        self.cut -= links
        self.log(f"healed {sorted(links)}")

    def crash(self, node: _Node) -> None:
        if node.core is None:
            return
        self.log(f"{node.name} crashes")
        self._stop(node)

    def _stop(self, node: _Node) -> None:
        """``node`` stops (a crash, the end of a drain): its clients are gone with it, and
        it starts again, as a new incarnation, `Faults.restart_after` later."""
        for client in self.clients:
            if client.alive and client.node == node.name:
                client.alive = False
                if client.ref is not None:
                    self.dead_refs.add(client.ref)
        node.core = None
        node.paused_until = None
        node.backlog = []
        incarnation = node.incarnation
        self.at(self.now + self.rng.uniform(*self.faults.restart_after), lambda: self._restart(node, incarnation))

    def drain(self, node: _Node) -> None:
        """An orderly stop with a drain: the replica leaves at once, its clients leave
        over ``drain_seconds`` (their connections closed batch by batch), then the node
        stops and, later, starts again as a new incarnation."""
        core = node.core
        if core is None or node.draining:
            return
        self.log(f"{node.name} drains")
        node.draining = True
        self.perform(node, core.leave())
        incarnation = node.incarnation
        seconds = self.rng.uniform(*self.faults.drain_seconds)
        for client in self.clients:
            if client.alive and client.node == node.name:
                self.at(self.now + self.rng.uniform(0, seconds), functools.partial(self._drained_client, client))
        self.at(self.now + seconds + 0.01, lambda: self._drained(node, incarnation))
        settings = self.settings
        window = self.down_period + 2 * settings.broadcast_period * (settings.max_silent_periods + 1) + 1.0
        began = self.now
        self.at(self.now + window, lambda: self._check_left(node, incarnation, began, window))

    def _check_left(self, node: _Node, incarnation: int, began: float, window: float) -> None:
        """Invariant 4: once a node drains, the others list none of its presences within
        ``window`` (at once if its permdown arrives, after ``down_period`` of its silence
        if not), unless a pause of their own excused its silence."""
        if not node.draining or node.incarnation != incarnation:
            return  # its drain ended (it stopped): the others see it down by other means
        for other in self.nodes.values():
            if other is node or other.core is None or other.paused_until is not None:
                continue
            if other.resumed_at > began - window:
                continue
            for topic in self.topics:
                for key, meta, pid in other.core.state.get_by_topic(topic):
                    if isinstance(pid, tuple) and pid[0] == node.name and pid[1] == incarnation:
                        self.violate(4, f"{other.name} still lists {key} ({meta['phx_ref']}) of draining {node.name}")

    def _drained_client(self, client: _Client) -> None:
        if client.alive:
            self.on(self.nodes[client.node], lambda: self.leave(client))

    def _drained(self, node: _Node, incarnation: int) -> None:
        if node.core is None or node.incarnation != incarnation:
            return  # crashed meanwhile
        self.perform(node, node.core.shutdown(True))
        self.log(f"{node.name} stopped after its drain")
        self._stop(node)  # clients still there (joined during the drain) are cut off

    def _restart(self, node: _Node, incarnation: int) -> None:
        if node.core is None and node.incarnation == incarnation:
            self.start(node)

    # -- the run ---------------------------------------------------------------------------------

    def violate(self, invariant: int, what: str) -> None:
        self.violations.append(Violation(invariant, self.now, what))
        self.log(f"VIOLATION of invariant {invariant}: {what}")

    def _step(self) -> None:
        """Once per 0.1 s of the schedule: maybe a client action, maybe a fault."""
        rng = self.rng
        faults = self.faults
        up = [n for n in self.nodes.values() if n.up and not n.draining]
        live = [c for c in self.clients if c.alive]
        roll = rng.random()
        if up and (roll < 0.25 or len(live) < 2):
            self.join(rng.choice(up), rng.choice(self.topics), rng.choice(self.keys))
        elif live and roll < 0.35:
            self.leave(rng.choice(live))
        elif live and roll < 0.45:
            self.update(rng.choice(live))
        names = list(self.nodes)
        if rng.random() < faults.pause:
            self.pause(self.nodes[rng.choice(names)], rng.uniform(*faults.pause_seconds))
        if rng.random() < faults.partition:
            seconds = rng.uniform(*faults.partition_seconds)
            kind = rng.random()
            lone = rng.choice(names)
            others = [n for n in names if n != lone]
            if kind < 0.4:  # one node isolated, both ways
                links = {(lone, o) for o in others} | {(o, lone) for o in others}
            elif kind < 0.7:  # one way only
                links = {(lone, o) for o in others} if rng.random() < 0.5 else {(o, lone) for o in others}
            else:  # one link, one way
                links = {(lone, rng.choice(others))}
            self.partition(links, seconds)
        if up and rng.random() < faults.crash:
            self.crash(rng.choice(up))
        if faults.drain and up and rng.random() < faults.drain:  # no draw without drains: kept seeds replay
            self.drain(rng.choice(up))

    def heal_all(self) -> float:
        """End every fault now: paused nodes resume, links are restored, crashed nodes
        restart, the network stops dropping; returns the time of the heal."""
        self.healed = True
        self.cut.clear()
        for node in self.nodes.values():
            if node.paused_until is not None:
                self.resume(node)
            if node.draining and node.core is not None:
                self._drained(node, node.incarnation)  # the drain ends now
            if node.core is None:
                self.start(node)
        self.log("every fault has healed")
        return self.now

    def _run_until(self, end: float) -> None:
        events = self._events
        while events and events[0][0] <= end:
            when, _, action = heapq.heappop(events)
            self.now = when
            action()
        self.now = end

    def truth(self) -> dict[str, dict[str, frozenset[str]]]:
        """topic -> key -> refs of the presences tracked on nodes that are up (and not
        draining: their replica left the cluster)."""
        entries: dict[str, list[tuple[str, Meta]]] = {topic: [] for topic in self.topics}
        for node in self.nodes.values():
            core = node.core
            if core is None or node.draining:
                continue
            for topic in self.topics:
                for key, meta, pid in core.state.get_by_topic(topic):
                    if isinstance(pid, tuple) and pid[0] == node.name:
                        entries[topic].append((key, meta))
        return {topic: _refs(found) for topic, found in entries.items()}

    def _disagreements(self) -> list[str]:
        truth = self.truth()
        out = []
        for node in self.nodes.values():
            if node.core is None:
                continue
            for topic in self.topics:
                view = _refs((k, m) for k, m, _ in node.core.state.get_by_topic(topic))
                if view != truth[topic]:
                    out.append(f"{node.name} sees {topic} as {_show(view)}, the truth is {_show(truth[topic])}")
        return out

    def _client_disagreements(self) -> list[str]:
        out = []
        for client in self.clients:
            node = self.nodes[client.node]
            if not client.alive or node.core is None or not client.view.synced:
                continue
            server = _refs((k, m) for k, m, _ in node.core.state.get_by_topic(client.topic))
            seen = client.view.refs()
            if seen != server:
                out.append(f"client {client.id} on {node.name} sees {_show(seen)}, its node {_show(server)}")
        return out

    def run(self) -> Result:
        for node in self.nodes.values():
            self.start(node)
        steps = int(self.duration / 0.1)
        for number in range(steps):
            self.at(number * 0.1, self._step)
        self._run_until(self.duration)
        last_heal = self.heal_all()
        # Convergence: the heal is seen within down_period-ish; then converge_within.
        settle = self.down_period + 2 * self.settings.broadcast_period * self.settings.max_silent_periods
        deadline = last_heal + settle + self.converge_within
        converged_at: float | None = None
        while self.now < deadline:
            self._run_until(self.now + 0.1)
            if not self._disagreements() and not self._client_disagreements():
                converged_at = converged_at if converged_at is not None else self.now
            else:
                converged_at = None
        if converged_at is None:
            for text in self._disagreements():
                self.violate(2, text)
            for text in self._client_disagreements():
                self.violate(1, text)
        return Result(
            self.seed,
            self.violations,
            self.trace,
            None if converged_at is None else max(0.0, converged_at - last_heal),
            self.diffs,
            self.messages,
        )


def _show(view: dict[str, frozenset[str]]) -> str:
    return "{" + ", ".join(f"{k}: {sorted(v)}" for k, v in sorted(view.items())) + "}"


def run_seed(seed: int, **options: Any) -> Result:
    """Run one seed; ``options`` are `Simulation`'s."""
    return Simulation(seed, **options).run()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeds to run (from --first)")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--trace", action="store_true", help="print the whole trace of each failing seed")
    parser.add_argument("--pauses-only", action="store_true", help="only pauses shorter than down_period (invariant 3)")
    parser.add_argument("--drains", action="store_true", help="nodes also drain (orderly stops, Drainer)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON lines")
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else list(range(args.first, args.first + args.seeds))
    options: dict[str, Any] = {}
    if args.pauses_only:
        options = {"faults": Faults.pauses_only(DOWN_PERIOD * 0.8), "check_no_spurious": True}
    elif args.drains:
        options = {"faults": Faults().with_drains()}
    started = time.perf_counter()
    failed = 0
    converge: list[float] = []
    for seed in seeds:
        result = run_seed(seed, **options)
        if result.converge_after_heal is not None:
            converge.append(result.converge_after_heal)
        if not result.ok:
            failed += 1
            print(f"seed {seed}: {len(result.violations)} violations; first: {result.violations[0]}")
        if (args.trace and not result.ok) or (args.seed is not None and (args.trace or not result.ok)):
            print("\n".join(result.trace if args.seed is not None else result.trace[-400:]))
    elapsed = time.perf_counter() - started
    converge.sort()
    p99 = converge[min(len(converge) - 1, int(len(converge) * 0.99))] if converge else float("nan")
    figures = {
        "faults.divergences": failed,
        "faults.sim_seeds": len(seeds),
        "faults.sim_seeds_per_s": len(seeds) / elapsed,
        "faults.sim_converge_after_heal_p99": p99,
    }
    if args.json:
        for name, value in figures.items():
            print(json.dumps({"bench": name, "value": value}))
    else:
        rate = len(seeds) / elapsed
        print(f"seeds: {len(seeds) - failed} kept every invariant, {failed} did not ({rate:.1f} seeds/s; ", end="")
        print(f"convergence after the heal: p99 {p99:.2f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main())
