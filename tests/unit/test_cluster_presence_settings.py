"""The cluster tracker timing (pure): the 5 s / 10 s promises follow from the numbers."""

from __future__ import annotations

import pytest

from alight.channels.presence.tracker import InvalidSettings, TrackerSettings
from alight.cluster.presence import CLUSTER_TRACKER_SETTINGS, cluster_settings, service_name


def test_cluster_timing_detects_a_dead_node_within_5s() -> None:
    s = CLUSTER_TRACKER_SETTINGS
    assert s.down_period is not None
    # An idle shard still heartbeats every (max_silent_periods + 1) ticks: it must
    # not look down between two of them, even with one lost.
    assert 2 * (s.max_silent_periods + 1) * s.broadcast_period <= s.down_period
    # Down is noticed on the first tick after down_period of silence.
    assert s.down_period + s.broadcast_period < 5.0
    assert s.permdown_period >= 100 * s.down_period
    assert s.permdown_on_shutdown


def test_untouched_phoenix_defaults_become_the_cluster_timing() -> None:
    mine = cluster_settings(TrackerSettings(pool_size=4, diff_period=0.01).validated())
    assert (mine.broadcast_period, mine.down_period) == (0.5, 3.0)
    assert (mine.pool_size, mine.diff_period) == (4, 0.01)


def test_tuned_settings_are_kept() -> None:
    tuned = TrackerSettings(broadcast_period=1.0, down_period=10.0).validated()
    assert cluster_settings(tuned) is tuned


def test_the_cluster_timing_is_validated() -> None:
    with pytest.raises(InvalidSettings, match="down_period"):
        TrackerSettings(broadcast_period=0.5, down_period=0.5).validated()


def test_service_name_per_shard() -> None:
    assert service_name("app.presence_shard0") == "alight.tracker:app.presence_shard0"
