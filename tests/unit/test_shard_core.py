"""The shard core's timing decisions (`channels/presence/_shard.py`): silence is measured
from the heartbeat that was due and in the shard's own running time, and a shard that
was paused speaks at once."""

from __future__ import annotations

from alight.channels.presence._replication import Heartbeat, ReplicaTable
from alight.channels.presence._shard import Publish, ShardCore
from alight.channels.presence._state import Replica
from alight.channels.presence.simulation import SIM_SETTINGS

A, B = Replica("a", 1), Replica("b", 1)


def core(now: float = 0.0) -> ShardCore:
    refs = iter(range(1_000))
    return ShardCore(SIM_SETTINGS, "s", A, now, lambda: f"r{next(refs)}")


def hello(shard: ShardCore, at: float) -> None:
    shard.receive(Heartbeat("s", B, None, {B: 0}), at)


def test_down_after_down_period_beyond_the_heartbeat_that_was_due() -> None:
    table = ReplicaTable(3.0, 600.0, heartbeat_interval=1.5)
    table.heartbeat(B, 0.0)
    assert table.detect_down(4.4) == []  # silent 4.4 s, but the next heartbeat was due at 1.5
    assert table.detect_down(4.6) == [("down", B)]


def test_a_shard_resuming_from_a_pause_does_not_take_the_others_for_down() -> None:
    shard = core()
    hello(shard, 0.1)
    assert shard.replicas.status(B) == "up"
    for tick in (0.5, 1.0):
        shard.tick(tick)
    # Paused 9 s: the first tick after it comes before B's queued heartbeats are read.
    effects = shard.tick(10.0)
    assert shard.replicas.status(B) == "up"
    assert not shard.batch
    # ... and it publishes at once, whatever its silent-period count.
    assert any(isinstance(effect, Publish) for effect in effects)


def test_a_replica_that_really_went_silent_goes_down() -> None:
    shard = core()
    hello(shard, 0.1)
    now = 0.0
    while shard.replicas.status(B) == "up":
        now += SIM_SETTINGS.broadcast_period
        shard.tick(now)
        assert now < 10
    assert 4.5 <= now <= 5.0  # down_period (3 s) after the heartbeat due 1.5 s after the last
