"""The tracker CRDT (docs/protocol.md §7.3, §7.6) with plain values: no loop, no processes."""

from __future__ import annotations

import pickle

import pytest

from alight.channels.presence._generations import DeltaGenerations
from alight.channels.presence._state import Delta, Replica, State

A = Replica("a@host", 1)
B = Replica("b@host", 1)
C = Replica("c@host", 1)


def pair() -> tuple[State, State]:
    a, b = State(A), State(B)
    a.replica_up(B)
    b.replica_up(A)
    return a, b


def test_join_and_queries() -> None:
    s = State(A)
    s.join("p1", "room:1", "alice", {"d": 1})
    s.join("p2", "room:1", "bob", {"d": 2})
    s.join("p1", "room:2", "alice", {"d": 3})
    assert s.get_by_topic("room:1") == [("alice", {"d": 1}, "p1"), ("bob", {"d": 2}, "p2")]
    assert s.get_by_key("room:1", "alice") == [("p1", {"d": 1})]
    assert s.get_by_key("room:1", "carol") == []
    assert sorted(s.get_by_pid("p1")) == [("room:1", "alice", {"d": 1}), ("room:2", "alice", {"d": 3})]
    assert s.get_meta("p2", "room:1", "bob") == {"d": 2}
    assert s.get_by_topic("nowhere") == []
    assert s.context == {A: 3}
    assert len(s) == 3
    with pytest.raises(ValueError, match="already tracked"):
        s.join("p1", "room:1", "alice", {})


def test_leave_bumps_clock_and_records_delta() -> None:
    s = State(A)
    s.join("p1", "t", "k", {"v": 1})
    s.take_delta()
    assert not s.has_delta()
    assert s.leave("p1", "t", "k") == {"v": 1}
    assert s.leave("p1", "t", "k") is None
    assert s.get_by_topic("t") == []
    assert s.context == {A: 2}  # the remove took a dot of its own
    delta = s.take_delta()
    assert delta.values == {}
    assert delta.clouds == {A: {1, 2}}
    assert (delta.start, delta.end) == ({A: 1}, {A: 2})


def test_update_is_leave_then_join() -> None:
    a, b = pair()
    a.join("p1", "t", "k", {"ref": "1"})
    b.merge(a.take_delta())
    old = a.leave("p1", "t", "k")
    a.join("p1", "t", "k", {"ref": "2", "prev": old["ref"] if old else None})
    joins, leaves = b.merge(a.take_delta())
    assert joins == [("t", "k", {"ref": "2", "prev": "1"}, "p1")]
    assert leaves == [("t", "k", {"ref": "1"}, "p1")]
    assert b.get_by_topic("t") == [("k", {"ref": "2", "prev": "1"}, "p1")]


def test_leave_pid() -> None:
    s = State(A)
    s.join("p1", "t1", "k", {})
    s.join("p1", "t2", "k", {})
    s.join("p2", "t1", "j", {})
    assert sorted(s.leave_pid("p1")) == [("t1", "k", {}), ("t2", "k", {})]
    assert s.get_by_pid("p1") == []
    assert s.get_by_topic("t1") == [("j", {}, "p2")]
    assert s.leave_pid("p1") == []


def test_merge_reports_joins_and_leaves() -> None:
    a, b = pair()
    a.join("p1", "t", "k1", {})
    a.join("p2", "t", "k2", {})
    joins, leaves = b.merge(a.take_delta())
    assert sorted(joins) == [("t", "k1", {}, "p1"), ("t", "k2", {}, "p2")]
    assert leaves == []
    a.leave("p1", "t", "k1")
    joins, leaves = b.merge(a.take_delta())
    assert (joins, leaves) == ([], [("t", "k1", {}, "p1")])
    assert b.get_by_topic("t") == [("k2", {}, "p2")]
    # A duplicate delta changes nothing.
    assert b.merge(a.delta) == ([], [])


def test_merge_ignores_unknown_replicas() -> None:
    a = State(A)
    b = State(B)  # b does not know A yet
    a.join("p1", "t", "k", {})
    assert b.merge(a.take_delta()) == ([], [])
    assert b.get_by_topic("t") == []
    assert A not in b.context


def test_own_values_never_leave_through_merge() -> None:
    a, b = pair()
    a.join("p1", "t", "k", {})
    # b has seen nothing of A's dot, then claims to have covered it without the value
    b.merge(a.extract(B, b.context))
    b_state = b.extract(A, a.context)
    assert a.merge(b_state) == ([], [])
    assert a.get_by_topic("t") == [("k", {}, "p1")]


def test_old_delta_does_not_resurrect() -> None:
    a, b = pair()
    a.join("p1", "t", "k", {})
    d1 = a.take_delta()
    a.leave("p1", "t", "k")
    d2 = a.take_delta()
    assert b.merge(d2) == ([], [])
    assert b.merge(d1) == ([], [])
    assert b.get_by_topic("t") == []
    assert b.context == {B: 0, A: 2}
    assert b.clouds == {}


def test_gap_stays_in_clouds_until_repaired_by_transfer() -> None:
    a, b = pair()
    a.join("p1", "t", "k1", {})
    a.take_delta()  # dropped
    a.join("p2", "t", "k2", {})
    b.merge(a.take_delta())
    assert b.context[A] == 0
    assert b.clouds == {A: frozenset({2})}
    joins, leaves = b.merge(a.extract(B, b.clocks()))
    assert (joins, leaves) == ([("t", "k1", {}, "p1")], [])
    assert b.context[A] == 2
    assert b.clouds == {}


def test_newer_value_of_same_presence_wins_over_late_delta() -> None:
    a, b = pair()
    a.join("p1", "t", "k", {"n": 1})
    d1 = a.take_delta()
    a.leave("p1", "t", "k")
    a.take_delta()  # the remove is dropped
    a.join("p1", "t", "k", {"n": 2})
    d3 = a.take_delta()
    assert b.merge(d3) == ([("t", "k", {"n": 2}, "p1")], [])
    assert b.merge(d1) == ([], [])  # the older add is dead
    assert b.get_by_topic("t") == [("k", {"n": 2}, "p1")]


def test_full_state_merge_reports_leaves() -> None:
    a, b = pair()
    a.join("p1", "t", "k", {})
    b.merge(a.take_delta())
    a.leave("p1", "t", "k")
    a.take_delta()  # dropped
    joins, leaves = b.merge(a.extract(B, b.clocks()))
    assert (joins, leaves) == ([], [("t", "k", {}, "p1")])


def test_extract_restricts_to_known_replicas_without_requesters_values() -> None:
    a, b = pair()
    c = State(C)
    a.replica_up(C)
    c.replica_up(A)
    b.join("pb", "t", "kb", {})
    c.join("pc", "t", "kc", {})
    a.merge(b.take_delta())
    a.merge(c.take_delta())
    a.join("pa", "t", "ka", {})
    out = a.extract(B, {B: 1, A: 0})
    assert set(out.context) == {A, B}
    assert sorted(str(v[1]) for v in out.values()) == ["pa"]
    # Merged by b: A's value joins, C's does not exist for b, b's own is untouched.
    assert b.merge(out) == ([("t", "ka", {}, "pa")], [])
    assert sorted(k for k, _, _ in b.get_by_topic("t")) == ["ka", "kb"]


def test_down_hides_up_reveals_permdown_deletes() -> None:
    a, b = pair()
    b.join("pb", "t", "k", {})
    a.merge(b.take_delta())
    assert a.replica_down(B) == [("t", "k", {}, "pb")]
    assert a.replica_down(B) == []
    assert a.get_by_topic("t") == []
    assert a.get_by_key("t", "k") == []
    assert a.clocks() == {A: 0}
    assert len(a) == 1  # hidden, kept
    assert a.replica_up(B) == [("t", "k", {}, "pb")]
    assert a.replica_up(B) == []
    assert a.get_by_topic("t") == [("k", {}, "pb")]
    a.replica_down(B)
    a.remove_down_replicas(B)
    assert len(a) == 0
    assert B not in a.context
    assert B not in a.replicas
    # A zombie delta from the removed replica is ignored.
    b.join("pb2", "t", "k2", {})
    assert a.merge(b.take_delta()) == ([], [])


def test_merges_from_down_replica_are_not_reported() -> None:
    a, b = pair()
    a.replica_down(B)
    b.join("pb", "t", "k", {})
    assert a.merge(b.take_delta()) == ([], [])
    assert a.replica_up(B) == [("t", "k", {}, "pb")]


def test_new_replica_starts_at_zero() -> None:
    a = State(A)
    assert a.replica_up(B) == []
    assert a.context == {A: 0, B: 0}
    assert a.replicas == {A: "up", B: "up"}
    with pytest.raises(ValueError, match="itself"):
        a.replica_down(A)


def test_delta_merge_requires_contiguity() -> None:
    s = State(A)
    s.join("p1", "t", "k1", {})
    d1 = s.take_delta()
    s.join("p2", "t", "k2", {})
    d2 = s.take_delta()
    s.leave("p1", "t", "k1")
    d3 = s.take_delta()
    merged = d1.merge(d2)
    assert merged is not None
    assert (merged.start, merged.end) == ({A: 0}, {A: 2})
    assert d1.merge(d3) is None
    full = merged.merge(d3)
    assert full is not None
    assert sorted(str(v[1]) for v in full.entries()) == ["p2"]
    assert full.clouds == {A: {1, 2, 3}}


def test_delta_extract_and_pickle() -> None:
    s = State(A)
    s.replica_up(B)
    s.join("p1", "t", "k", {"m": 1})
    delta = s.take_delta()
    assert delta.extract(A, {A: 0, B: 0}).values == {}
    copy = pickle.loads(pickle.dumps(delta))
    assert isinstance(copy, Delta)
    assert list(copy.entries()) == list(delta.entries())


def test_delta_generations_answer_transfer_requests() -> None:
    s = State(A)
    gens = DeltaGenerations((4, 8))
    for i in range(6):
        s.join(f"p{i}", "t", f"k{i}", {})
        gens.push(s.take_delta())
    small, big = gens.generations
    assert small.size() <= 4
    assert big.size() <= 8
    assert gens.find({A: 5}) is small
    assert gens.find({A: 3}) is big
    assert gens.find({A: 0}) is None  # too old: full state
    assert gens.find({A: 6}) is None  # up to date
    gens.remove_replica(A)
    assert all(not g.values for g in gens.generations)
    gens.clear()
    assert gens.generations == ()
    with pytest.raises(ValueError, match="positive"):
        DeltaGenerations(())


def test_a_transfer_ack_delta_cannot_strip_the_requesters_own_values_from_its_generations() -> None:
    """Regression: a delta extracted for a requester used to keep the requester's dots (its
    clouds and range) without its values. The requester pushes the ack into its generations,
    where `Delta.merge` read "dot covered, no value" as a remove and dropped its own values;
    a third replica answered from that generation then covered them without holding them,
    reached equal clocks, and never asked again."""
    states = {r: State(r) for r in (A, B, C)}
    gens = {r: DeltaGenerations() for r in (A, B, C)}
    for s in states.values():
        for r in (A, B, C):
            if r != s.replica:
                s.replica_up(r)
    a, b, c = states[A], states[B], states[C]

    def heartbeat(sender: State, *receivers: State) -> None:
        delta = sender.take_delta()
        gens[sender.replica].push(delta)
        for receiver in receivers:
            receiver.merge(delta)
            gens[receiver.replica].push(delta)

    def transfer(requester: State, responder: State) -> None:
        generation = gens[responder.replica].find(requester.clocks())
        assert generation is not None  # answered by a delta generation, not the full state
        ack = generation.extract(requester.replica, requester.clocks())
        assert requester.replica not in ack.clouds
        assert requester.replica not in ack.end
        requester.merge(ack)
        gens[requester.replica].push(ack)

    a.join("pa", "t", "ka", {})
    heartbeat(a, b)  # c misses it
    b.join("pb", "t", "kb", {})
    heartbeat(b, c)  # a misses it
    transfer(a, b)  # a gets pb from b's generation, which also holds a's own delta
    assert a.get_by_topic("t") == [("ka", {}, "pa"), ("kb", {}, "pb")]
    transfer(c, a)  # c gets pa from a's generation
    assert sorted(k for k, _m, _p in c.get_by_topic("t")) == ["ka", "kb"]
    assert c.context == a.context == b.context
