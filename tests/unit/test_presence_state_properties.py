"""CRDT laws of the tracker state (docs/protocol.md §7.3), checked with Hypothesis.

Histories are random: three replicas track and untrack presences of their own pids, publish
heartbeat deltas that are delivered in any order, duplicated or dropped, and sometimes ask a
peer for a full transfer. Every merge is checked against the set difference it reports.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alight.channels.presence._generations import DeltaGenerations
from alight.channels.presence._state import Change, Delta, Replica, State

REPLICAS = (Replica("a", 1), Replica("b", 1), Replica("c", 1))
TOPICS = ("t1",)  # a small space, so that histories revisit the same presences
KEYS = ("k1",)

replica_index = st.integers(0, len(REPLICAS) - 1)
op = st.one_of(
    st.tuples(st.just("join"), replica_index, st.integers(0, 1), st.sampled_from(TOPICS), st.sampled_from(KEYS)),
    st.tuples(st.just("leave"), replica_index, st.integers(0, 1), st.sampled_from(TOPICS), st.sampled_from(KEYS)),
    st.tuples(st.just("update"), replica_index, st.integers(0, 1), st.sampled_from(TOPICS), st.sampled_from(KEYS)),
    st.tuples(st.just("exit"), replica_index, st.integers(0, 1)),
    st.tuples(st.just("heartbeat"), replica_index),
    st.tuples(st.just("deliver"), st.integers(0, 1_000), replica_index),
    st.tuples(st.just("transfer"), replica_index, replica_index),
)
histories = st.lists(op, min_size=10, max_size=80)

Visible = Counter[tuple[str, str, int, Any]]


def visible(state: State) -> Visible:
    """What `get_by_topic` shows, keyed by the meta's unique token."""
    return Counter((t, k, m["n"], p) for t in TOPICS for k, m, p in state.get_by_topic(t))


def as_counter(changes: list[Change]) -> Visible:
    return Counter((t, k, m["n"], p) for t, k, m, p in changes)


def content(state: State) -> tuple[frozenset[tuple[Any, ...]], dict[Replica, int], dict[Replica, frozenset[int]]]:
    values = frozenset((t, p, k, m["n"], dot) for t, p, k, m, dot in state.values(include_down=True))
    return values, dict(state.context), state.clouds


class Cluster:
    def __init__(self) -> None:
        self.states = [State(r) for r in REPLICAS]
        for s in self.states:
            for r in REPLICAS:
                if r != s.replica:
                    s.replica_up(r)
        self.network: list[Delta] = []
        self.token = 0
        self.gone: list[set[int]] = [set() for _ in REPLICAS]

    def merge(self, i: int, remote: State | Delta) -> None:
        state = self.states[i]
        before = visible(state)
        joins, leaves = state.merge(remote)
        after = visible(state)
        assert as_counter(joins) == after - before
        assert as_counter(leaves) == before - after
        self.check_no_ghosts(i, before, after)

    def check_no_ghosts(self, i: int, before: Visible, after: Visible) -> None:
        self.gone[i] |= {n for _, _, n, _ in before - after}
        assert not {n for _, _, n, _ in after} & self.gone[i], "a presence that left came back"

    def local(self, i: int, change: Any) -> None:
        before = visible(self.states[i])
        change()
        self.check_no_ghosts(i, before, visible(self.states[i]))

    def run(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        if kind in ("join", "leave", "update"):
            _, i, p, topic, key = step
            s, pid = self.states[i], f"{REPLICAS[i].name}:{p}"
            self.token += 1
            meta = {"n": self.token}
            if kind == "join" and s.get_meta(pid, topic, key) is None:
                self.local(i, lambda: s.join(pid, topic, key, meta))
            elif kind == "leave":
                self.local(i, lambda: s.leave(pid, topic, key))
            elif kind == "update" and s.get_meta(pid, topic, key) is not None:
                self.local(i, lambda: (s.leave(pid, topic, key), s.join(pid, topic, key, meta)))
        elif kind == "exit":
            _, i, p = step
            self.local(i, lambda: self.states[i].leave_pid(f"{REPLICAS[i].name}:{p}"))
        elif kind == "heartbeat":
            if self.states[step[1]].has_delta():
                self.network.append(self.states[step[1]].take_delta())
        elif kind == "deliver":
            if self.network:
                self.merge(step[2], self.network[step[1] % len(self.network)])
        elif kind == "transfer":
            _, src, dst = step
            if src != dst:
                requester = self.states[dst]
                self.merge(dst, self.states[src].extract(requester.replica, requester.clocks()))

    def repair(self) -> None:
        """Heartbeats are lost; two rounds of full transfers between every pair repair them."""
        for s in self.states:
            s.take_delta()
        for _ in range(2):
            for dst in range(len(REPLICAS)):
                for src in range(len(REPLICAS)):
                    if src != dst:
                        self.run(("transfer", src, dst))


def play(history: list[tuple[Any, ...]]) -> Cluster:
    cluster = Cluster()
    for step in history:
        cluster.run(step)
    return cluster


def merged(x: State, y: State) -> State:
    out = x.copy()
    out.merge(y)
    return out


@settings(max_examples=400, deadline=None)
@given(histories)
def test_replicas_converge_after_any_exchange(history: list[tuple[Any, ...]]) -> None:
    cluster = play(history)
    cluster.repair()
    a, b, c = cluster.states
    assert visible(a) == visible(b) == visible(c)
    assert content(a) == content(b) == content(c)
    assert all(not s.clouds for s in cluster.states)
    # What each replica shows of a replica's presences is what that replica holds itself.
    for i, s in enumerate(cluster.states):
        own = {v for v in content(s)[0] if v[4][0] == REPLICAS[i]}
        for other in cluster.states:
            assert {v for v in content(other)[0] if v[4][0] == REPLICAS[i]} == own


@settings(max_examples=300, deadline=None)
@given(histories)
def test_merge_is_commutative_associative_idempotent(history: list[tuple[Any, ...]]) -> None:
    x, y, z = play(history).states
    assert content(merged(x, y))[0] == content(merged(y, x))[0]
    assert content(merged(x, y))[1:] == content(merged(y, x))[1:]
    assert content(merged(merged(x, y), z)) == content(merged(x, merged(y, z)))
    assert content(merged(x, x)) == content(x)
    xy = merged(x, y)
    assert content(merged(xy, y)) == content(xy)


@settings(max_examples=300, deadline=None)
@given(histories, st.randoms(use_true_random=False))
def test_old_deltas_in_any_order_bring_no_ghosts(history: list[tuple[Any, ...]], rnd: Any) -> None:
    """Every delta delivered everywhere, shuffled and twice: no ghosts, and convergence by deltas alone."""
    cluster = play(history)
    for i in range(len(REPLICAS)):
        cluster.run(("heartbeat", i))
    deliveries = [("deliver", i, dst) for i in range(len(cluster.network)) for dst in range(len(REPLICAS))]
    rnd.shuffle(deliveries)
    for step in deliveries + deliveries[::-1]:  # checks joins/leaves and ghosts on every merge
        cluster.run(step)
    a, b, c = cluster.states
    assert content(a)[0] == content(b)[0] == content(c)[0]


class ShardCluster(Cluster):
    """The shard's replication (docs/protocol.md §7.4-7.6) on top of `Cluster`: every replica keeps
    small delta generations; heartbeat deltas go into the sender's and each receiver's
    generations; a transfer is answered from a generation when one fulfils the requester's
    clock (its ack then extends the requester's generations), else with the full state
    (which clears them)."""

    def __init__(self) -> None:
        super().__init__()
        self.generations = [DeltaGenerations((3, 8)) for _ in REPLICAS]
        self.senders: list[int] = []

    def merge(self, i: int, remote: State | Delta) -> None:
        super().merge(i, remote)
        self.check_no_context_without_values(i)

    def check_no_context_without_values(self, i: int) -> None:
        """A replica that has seen a dot whose owner still holds its value holds it too:
        otherwise equal clocks hide the gap and no transfer ever repairs it."""
        state = self.states[i]
        held = {dot for *_, dot in state.values(include_down=True)}
        for owner in self.states:
            if owner is not state:
                for *_, dot in owner.values():
                    if dot[0] == owner.replica and state.covers(dot):
                        assert dot in held, f"{state.replica.name} saw {dot} without its value"

    def run(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        if kind == "heartbeat":
            i = step[1]
            if self.states[i].has_delta():
                delta = self.states[i].take_delta()
                self.generations[i].push(delta)
                self.network.append(delta)
                self.senders.append(i)
        elif kind == "deliver":
            _, n, dst = step
            if self.network and self.senders[n % len(self.network)] != dst:
                delta = self.network[n % len(self.network)]
                self.merge(dst, delta)
                self.generations[dst].push(delta)
        elif kind == "transfer":
            _, src, dst = step
            if src != dst:
                self.transfer(src, dst)
        else:
            super().run(step)

    def transfer(self, src: int, dst: int) -> None:
        clocks = self.states[dst].clocks()
        generation = self.generations[src].find(clocks)
        if generation is None:
            self.merge(dst, self.states[src].extract(REPLICAS[dst], clocks))
            self.generations[dst].clear()
        else:
            ack = generation.extract(REPLICAS[dst], clocks)
            self.merge(dst, ack)
            self.generations[dst].push(ack)

    def sync(self) -> None:
        """Transfer requests as the clock sampling sends them, until no clock is ahead."""
        for _ in range(20):
            behind = [
                (src, dst)
                for dst, requester in enumerate(self.states)
                for src, peer in enumerate(self.states)
                if src != dst and any(requester.context.get(r, 0) < c for r, c in peer.clocks().items())
            ]
            if not behind:
                return
            for src, dst in behind:
                self.transfer(src, dst)


@settings(max_examples=400, deadline=None)
@given(histories)
def test_transfers_answered_from_delta_generations_converge(history: list[tuple[Any, ...]]) -> None:
    """Lost heartbeats repaired by transfers from delta generations: no merge ever leaves a
    seen dot without its value, and once no clock is ahead every replica holds the same."""
    cluster = ShardCluster()
    for step in history:
        cluster.run(step)
    for i in range(len(REPLICAS)):
        cluster.run(("heartbeat", i))  # the last changes, delivered to nobody
    cluster.sync()
    a, b, c = cluster.states
    assert dict(a.context) == dict(b.context) == dict(c.context)
    assert content(a)[0] == content(b)[0] == content(c)[0]
