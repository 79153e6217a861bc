"""The tracker's settings and errors (Phoenix.Tracker's options, docs/protocol.md §7.1)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from ..errors import ChannelError

__all__ = ["AlreadyTracked", "InvalidSettings", "NoPresence", "TrackerError", "TrackerSettings"]


# -- errors --------------------------------------------------------------------------------


class TrackerError(ChannelError):
    """Root of the tracker's errors (a `ChannelError`)."""


class InvalidSettings(TrackerError):  # noqa: N818 - says what is wrong, as InvalidChildSpec
    """A tracker setting is out of range; ``field`` names it."""

    def __init__(self, field_name: str, why: str) -> None:
        self.field = field_name
        super().__init__(f"invalid tracker setting {field_name}: {why}")


class AlreadyTracked(TrackerError):  # noqa: N818 - Phoenix's {:error, {:already_tracked, ...}}
    """This (pid, topic, key) is tracked already."""

    def __init__(self, pid: Hashable, topic: str, key: str) -> None:
        self.pid, self.topic, self.key = pid, topic, key
        super().__init__(f"{pid} is already tracked under {key!r} on {topic!r}")


class NoPresence(TrackerError):  # noqa: N818 - Phoenix's {:error, :nopresence}
    """`update` of a (pid, topic, key) that is not tracked."""


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """Phoenix.Tracker's options (docs/protocol.md §7.1), in seconds.

    ``down_period`` defaults to ``broadcast_period * max_silent_periods * 2`` (30 s).
    ``diff_period`` is alight's: how long local joins/leaves are batched before
    ``handle_diff`` (0 = on the next turn of the shard's mailbox).
    ``permdown_on_shutdown``: on an orderly stop (``normal``/``shutdown``) each shard
    broadcasts `GracefulPermdown`, so peers drop its presences at once instead of after
    ``down_period``; the replicator must then be a `PermdownReplicator`.
    """

    broadcast_period: float = 1.5
    max_silent_periods: int = 10
    down_period: float | None = None
    permdown_period: float = 1200.0
    clock_sample_periods: int = 2
    pool_size: int = 1
    diff_period: float = 0.05
    max_delta_sizes: tuple[int, ...] = (100, 1_000, 10_000)
    permdown_on_shutdown: bool = False

    def validated(self) -> TrackerSettings:
        """These settings with defaults filled in; raises `InvalidSettings` naming
        the first bad field."""
        if not self.broadcast_period > 0:
            raise InvalidSettings("broadcast_period", f"must be > 0 seconds, got {self.broadcast_period!r}")
        if not (isinstance(self.max_silent_periods, int) and self.max_silent_periods >= 1):
            raise InvalidSettings("max_silent_periods", f"must be an int >= 1, got {self.max_silent_periods!r}")
        if not (isinstance(self.pool_size, int) and self.pool_size >= 1):
            raise InvalidSettings("pool_size", f"must be an int >= 1, got {self.pool_size!r}")
        if not (isinstance(self.clock_sample_periods, int) and self.clock_sample_periods >= 1):
            raise InvalidSettings("clock_sample_periods", f"must be an int >= 1, got {self.clock_sample_periods!r}")
        if not (self.max_delta_sizes and all(isinstance(n, int) and n > 0 for n in self.max_delta_sizes)):
            raise InvalidSettings("max_delta_sizes", f"must be positive ints, got {self.max_delta_sizes!r}")
        if not self.diff_period >= 0:
            raise InvalidSettings("diff_period", f"must be >= 0 seconds, got {self.diff_period!r}")
        down = self.down_period
        if down is None:
            down = self.broadcast_period * self.max_silent_periods * 2
        if not down >= 2 * self.broadcast_period:
            raise InvalidSettings(
                "down_period",
                f"must be >= 2 * broadcast_period ({2 * self.broadcast_period} s), got {down!r}",
            )
        if not self.permdown_period > down:
            raise InvalidSettings("permdown_period", f"must be > down_period ({down} s), got {self.permdown_period!r}")
        return TrackerSettings(
            self.broadcast_period,
            self.max_silent_periods,
            down,
            self.permdown_period,
            self.clock_sample_periods,
            self.pool_size,
            self.diff_period,
            tuple(self.max_delta_sizes),
            bool(self.permdown_on_shutdown),
        )
