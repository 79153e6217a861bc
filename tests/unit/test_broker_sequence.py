"""The broker's sequence bookkeeping (`alight.cluster._broker`), as values.

Hypothesis plays a sender's numbered stream through a lossy, duplicating, reordering
broker and checks the receiver's invariants: nothing is delivered twice, every message
is either delivered or counted (lost, replayed), and lost counts exactly the numbers that
never arrived before a later one did.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from alight.cluster._broker import BrokerStats, Receiver, Sequencer


def test_verdicts() -> None:
    stats = BrokerStats()
    r = Receiver("me", 10)
    assert r.accept("me", 10, "all", 1, stats) == "own"
    assert r.accept("a", 5, "all", 7, stats) == "deliver"  # first heard: nothing judged before
    assert r.accept("a", 5, "all", 8, stats) == "deliver"
    assert r.accept("a", 5, "all", 11, stats) == "deliver"
    assert stats.lost == 2
    assert r.accept("a", 5, "all", 9, stats) == "replay"  # late or replayed: dropped
    assert r.accept("a", 5, "direct", 1, stats) == "deliver"  # streams are numbered apart
    assert r.accept("a", 6, "all", 1, stats) == "deliver"  # a new incarnation starts over
    assert r.accept("a", 5, "all", 12, stats) == "conflict"  # the old one still talks
    assert r.accept("me", 11, "all", 1, stats) == "conflict"  # another node under my name
    assert (stats.lost, stats.replayed, stats.conflicts) == (2, 1, 2)
    r.forget("a")
    assert r.accept("a", 5, "all", 100, stats) == "deliver"


def test_the_sequencer_numbers_each_destination_apart() -> None:
    seq = Sequencer()
    assert [seq.next_all(), seq.next_all(), seq.next_direct("b"), seq.next_direct("c"), seq.next_direct("b")] == [
        1,
        2,
        1,
        1,
        2,
    ]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.sampled_from(["drop", "send", "dup"])), max_size=120))
def test_every_message_is_delivered_once_or_counted(plan: list[tuple[int, str]]) -> None:
    stats = BrokerStats()
    receiver = Receiver("me", 1)
    wire: list[int] = []
    for n, (_, action) in enumerate(plan, start=1):
        if action != "drop":
            wire.append(n)
        if action == "dup":
            wire.append(n)
    # Swap some neighbours: a reordering broker (Redis does not, a replay can).
    for i in range(0, len(wire) - 1, 3):
        if plan and plan[i % len(plan)][0] % 5 == 0:
            wire[i], wire[i + 1] = wire[i + 1], wire[i]
    delivered = [n for n in wire if receiver.accept("s", 1, "all", n, stats) == "deliver"]
    assert len(delivered) == len(set(delivered))  # never twice
    assert delivered == sorted(delivered)  # never backwards
    if delivered:
        first, last = delivered[0], delivered[-1]
        # Between the first and the last delivered, every number is delivered or lost.
        assert stats.lost == (last - first + 1) - len(delivered)
    assert len(delivered) + stats.replayed == len(wire)


def test_the_log_never_shows_a_redis_password() -> None:
    from alight.cluster.redis import _redact

    assert _redact("redis://user:pa:ss@h:6379/0") == "redis://user:***@h:6379/0"
    assert _redact("rediss://:secret@h") == "rediss://:***@h"
    assert _redact("redis://h:6379/0") == "redis://h:6379/0"
