"""Restart intensity: at most ``max_restarts`` restarts in any ``period`` seconds.

Pure (no clock of its own, no asyncio): the supervisor passes ``now``. One more
restart than the limit within the window means the supervisor gives up and exits
with ``shutdown``, which its own supervisor sees as a child exit (OTP's
``reached_max_restart_intensity``).

The window is OTP's (``supervisor:add_restart/3``): a restart at ``t`` still counts at
``now`` while ``t >= now - period``, the edge included. ``max_restarts=0`` means the
first restart already breaches.
"""

from __future__ import annotations

from collections import deque


class RestartIntensity:
    """Counts restarts in a sliding window; `add` says whether one more is allowed.

    Raises `ValueError` for ``max_restarts`` that is not an int >= 0 or a ``period``
    that is not a number > 0 (OTP's ``intensity`` and ``period``; alight's
    `Supervisor` calls them ``max_restarts`` and ``max_seconds``).
    """

    __slots__ = ("_times", "max_restarts", "period")

    def __init__(self, max_restarts: int, period: float) -> None:
        if not isinstance(max_restarts, int) or isinstance(max_restarts, bool) or max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0, not {max_restarts!r}")
        if not isinstance(period, int | float) or isinstance(period, bool) or not period > 0:
            raise ValueError(f"max_seconds must be a number > 0, not {period!r}")
        self.max_restarts = max_restarts
        self.period = float(period)
        self._times: deque[float] = deque()

    def add(self, now: float) -> bool:
        """Record a restart at ``now``; False when it breaches the intensity.

        ``now`` must not go backwards (a monotonic clock).
        """
        times = self._times
        times.append(now)
        threshold = now - self.period
        while times[0] < threshold:
            times.popleft()
        return len(times) <= self.max_restarts

    def __len__(self) -> int:
        """Restarts recorded in the window as of the last `add`."""
        return len(self._times)
