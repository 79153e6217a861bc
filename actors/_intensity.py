"""Restart intensity: at most ``max_restarts`` restarts in any ``period`` seconds.

Pure (no clock of its own, no asyncio): the supervisor passes ``now``. One more
restart than the limit within the window means the supervisor gives up and exits
with ``shutdown``, which its own supervisor sees as a child exit (OTP's
``reached_max_restart_intensity``).
"""

from __future__ import annotations

from collections import deque


class RestartIntensity:
    """Counts restarts in a sliding window; `add` says whether one more is allowed."""

    __slots__ = ("max_restarts", "period", "_times")

    def __init__(self, max_restarts: int, period: float) -> None:
        if not isinstance(max_restarts, int) or isinstance(max_restarts, bool) or max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0, not {max_restarts!r}")
        if not isinstance(period, int | float) or isinstance(period, bool) or period <= 0:
            raise ValueError(f"max_seconds must be a number > 0, not {period!r}")
        self.max_restarts = max_restarts
        self.period = float(period)
        self._times: deque[float] = deque()

    def add(self, now: float) -> bool:
        """Record a restart at ``now``; False when it breaches the intensity."""
        times = self._times
        times.append(now)
        horizon = now - self.period
        while times and times[0] <= horizon:
            times.popleft()
        return len(times) <= self.max_restarts

    def __len__(self) -> int:
        return len(self._times)
