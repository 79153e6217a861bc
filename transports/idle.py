"""Idle deadlines of many connections on one timer (a timing wheel).

A listener holding 100,000 WebSockets would otherwise hold 100,000 `asyncio.TimerHandle`
objects (about 540 bytes each with their arguments) only to learn, once a minute, that
a connection has been quiet. Here each connection sits in one *slot* (the deadline
rounded up to `resolution` seconds; a set of connections per slot) and one timer per
wheel fires for the earliest slot. A due connection is asked `IdleWatched.idle_check`:
it closes itself, or answers how long it may still stay quiet and goes into a later
slot. Activity costs nothing here: the connection's own policy records when it last
heard from its client (`alight.transports.policy.ConnectionPolicy.touch`), and the
wheel only asks when a deadline is due, as a timer per connection did.

A deadline may fire up to `resolution` late, never early.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

__all__ = ["IdleWatched", "IdleWheel", "idle_resolution"]


def idle_resolution(timeout: float) -> float:
    """The wheel resolution for an idle timeout: a tenth of it, at most one second (a
    60 s timeout closes between 60 and 61 s of silence)."""
    return min(1.0, max(timeout / 10, 0.001))


class IdleWatched(Protocol):
    """What the wheel needs of a connection."""

    def idle_check(self) -> float | None:
        """Called when the connection's deadline is due: seconds it may still stay
        quiet (it is put back for that long), or None (it closed, or is done with
        idle checks)."""


class IdleWheel:
    """Idle deadlines on one timer; `add` a connection with a delay, `discard` it when
    it goes (see the module docstring)."""

    __slots__ = ("_loop", "_slot_of", "_slots", "_timer", "_timer_slot", "resolution")

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = 1.0) -> None:
        if resolution <= 0:
            raise ValueError(f"resolution must be > 0, got {resolution!r}")
        self._loop = loop
        self.resolution = resolution
        self._slots: dict[int, set[IdleWatched]] = {}
        self._slot_of: dict[IdleWatched, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot: int | None = None

    def __len__(self) -> int:
        return len(self._slot_of)

    def add(self, conn: IdleWatched, delay: float) -> None:
        """Ask ``conn`` `IdleWatched.idle_check` in ``delay`` seconds (up to `resolution`
        later); replaces an earlier deadline of ``conn``."""
        self.discard(conn)
        slot = math.ceil((self._loop.time() + delay) / self.resolution)
        members = self._slots.get(slot)
        if members is None:
            members = self._slots[slot] = set()
        members.add(conn)
        self._slot_of[conn] = slot
        if self._timer_slot is None or slot < self._timer_slot:
            self._arm(slot)

    def discard(self, conn: IdleWatched) -> None:
        """Forget ``conn``'s deadline, if it has one."""
        slot = self._slot_of.pop(conn, None)
        if slot is None:
            return
        members = self._slots[slot]
        members.discard(conn)
        if not members:
            del self._slots[slot]
            if not self._slots and self._timer is not None:
                self._timer.cancel()
                self._timer = self._timer_slot = None

    def _arm(self, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_slot = slot
        self._timer = self._loop.call_at(slot * self.resolution, self._fire)

    def _fire(self) -> None:
        self._timer = self._timer_slot = None
        now_slot = math.floor(self._loop.time() / self.resolution)
        due = sorted(slot for slot in self._slots if slot <= now_slot)
        for slot in due:
            for conn in self._slots.pop(slot):
                del self._slot_of[conn]
                left = conn.idle_check()
                if left is not None:
                    self.add(conn, max(left, 0.0))
        if self._slots and self._timer is None:
            self._arm(min(self._slots))
