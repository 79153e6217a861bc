"""Restart intensity: a pure sliding window with an injected ``now`` (OTP's
``supervisor:add_restart/3``)."""

from __future__ import annotations

from typing import Any

import pytest

from alight.actors._intensity import RestartIntensity


def test_allows_max_restarts_within_the_period_and_breaches_on_one_more() -> None:
    window = RestartIntensity(3, 5.0)
    assert [window.add(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert window.add(3.0) is False


def test_restarts_older_than_the_period_no_longer_count() -> None:
    window = RestartIntensity(2, 5.0)
    assert window.add(0.0)
    assert window.add(1.0)
    # At 6.5 the restart at 0.0 (and the one at 1.0, 1.0 < 1.5) has left the window.
    assert window.add(6.5)
    assert len(window) == 1
    assert window.add(7.0)
    assert window.add(8.0) is False


def test_the_window_edge_is_inclusive_as_in_otp() -> None:
    window = RestartIntensity(1, 5.0)
    assert window.add(0.0)
    # Exactly `period` later the first restart still counts (R >= Now - Period).
    assert window.add(5.0) is False
    window = RestartIntensity(1, 5.0)
    assert window.add(0.0)
    assert window.add(5.001)


def test_a_slow_steady_rate_never_breaches() -> None:
    window = RestartIntensity(1, 1.0)
    assert all(window.add(t * 1.5) for t in range(100))


def test_max_restarts_zero_breaches_on_the_first_restart() -> None:
    window = RestartIntensity(0, 5.0)
    assert window.add(0.0) is False


@pytest.mark.parametrize("max_restarts", [-1, 1.5, "3", None, True])
def test_invalid_max_restarts(max_restarts: Any) -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        RestartIntensity(max_restarts, 5.0)


@pytest.mark.parametrize("period", [0, -1.0, "5", None, False, float("nan")])
def test_invalid_period(period: Any) -> None:
    with pytest.raises(ValueError, match="max_seconds"):
        RestartIntensity(3, period)
