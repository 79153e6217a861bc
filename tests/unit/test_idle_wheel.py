"""The idle wheel: one timer for many connections' idle deadlines, never early, at most
one resolution late; a connection that is still within its timeout goes back for what
is left; a discarded one is never asked; the timer stops when the wheel is empty (the
last connection discarded or checked)."""

from __future__ import annotations

import asyncio
import random

import pytest

from alight.transports.idle import IdleWheel, idle_resolution

RESOLUTION = 0.02


class Watched:
    """A connection whose idle check is recorded; it answers from ``answers`` (None
    once they run out: it closed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, answers: list[float | None]) -> None:
        self.loop = loop
        self.answers = answers
        self.checked: list[float] = []
        self.done: asyncio.Future[None] = loop.create_future()

    def idle_check(self) -> float | None:
        self.checked.append(self.loop.time())
        answer = self.answers.pop(0) if self.answers else None
        if answer is None and not self.done.done():
            self.done.set_result(None)
        return answer


def _run(scenario: object) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(10):
            await scenario  # type: ignore[misc]

    asyncio.run(bounded())


@pytest.mark.parametrize("seed", range(5))
def test_many_deadlines_fire_in_their_slot_never_early(seed: int) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        wheel = IdleWheel(loop, RESOLUTION)
        rand = random.Random(seed)
        added: dict[Watched, float] = {}
        for _ in range(200):
            conn = Watched(loop, [])
            delay = rand.uniform(0, 0.2)
            added[conn] = loop.time() + delay
            wheel.add(conn, delay)
        assert len(wheel) == 200
        await asyncio.gather(*(conn.done for conn in added))
        for conn, deadline in added.items():
            (at,) = conn.checked
            assert at >= deadline - 0.002  # the loop's clock may read a hair early
            assert at <= deadline + RESOLUTION + 0.05  # one slot late at most (+ scheduling)
        assert len(wheel) == 0
        assert wheel._timer is None  # nothing left to wait for: no timer

    _run(scenario())


def test_a_connection_still_within_its_timeout_goes_back_for_what_is_left() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        wheel = IdleWheel(loop, RESOLUTION)
        start = loop.time()
        conn = Watched(loop, [0.05, 0.05])  # twice "not yet", then closes
        wheel.add(conn, 0.05)
        await conn.done
        assert len(conn.checked) == 3
        assert conn.checked[-1] - start >= 0.15 - 0.003
        assert len(wheel) == 0

    _run(scenario())


def test_discarded_connections_are_never_asked_and_re_adding_replaces() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        wheel = IdleWheel(loop, RESOLUTION)
        gone = Watched(loop, [])
        moved = Watched(loop, [])
        witness = Watched(loop, [])
        wheel.add(gone, 0.01)
        wheel.add(moved, 0.01)
        wheel.add(moved, 0.08)  # replaces its first deadline
        wheel.add(witness, 0.1)
        wheel.discard(gone)
        wheel.discard(gone)  # twice: no error
        start = loop.time()
        await witness.done
        assert gone.checked == []
        assert len(moved.checked) == 1
        assert moved.checked[0] - start >= 0.08 - 0.003
        lone = Watched(loop, [])
        wheel.add(lone, 5.0)
        wheel.discard(lone)  # the last one goes: so does the timer
        assert len(wheel) == 0
        assert wheel._timer is None

    _run(scenario())


def test_resolution_is_a_tenth_of_the_timeout_at_most_a_second() -> None:
    assert idle_resolution(60.0) == 1.0
    assert idle_resolution(0.5) == pytest.approx(0.05)
    assert idle_resolution(0.0) == 0.001
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="resolution"):
            IdleWheel(loop, 0)
    finally:
        loop.close()
