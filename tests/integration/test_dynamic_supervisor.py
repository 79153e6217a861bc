"""DynamicSupervisor: children on demand, max_children, restarts, intensity, shutdown."""

from __future__ import annotations

from typing import Any

import pytest
from testkit import UNIT, Runner
from testkit.workers import down, flaky, lifecycle, spawned, started, stopped, stubborn, watch, worker

from alight.actors import (
    DynamicSupervisor,
    InvalidChildSpec,
    Pid,
    StartError,
    SupervisorError,
    cast,
    receive_nowait,
    self_pid,
)
from alight.actors import (
    exit as exit_signal,
)

SHORT = 0.1 * UNIT


async def children(sup: Pid) -> list[tuple[Any, Pid | None]]:
    return [(child.id, child.pid) for child in await DynamicSupervisor.which_children(sup)]


def test_start_terminate_which_and_count(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await DynamicSupervisor.start_link()
        a = await DynamicSupervisor.start_child(sup, worker(me, "a"))
        assert a == await started("a")
        b = await DynamicSupervisor.start_child(sup, worker(me, "b"))
        assert b == await started("b")
        assert await children(sup) == [("a", a), ("b", b)]
        counts = await DynamicSupervisor.count_children(sup)
        assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (2, 2, 0, 2)
        await DynamicSupervisor.terminate_child(sup, a)
        assert await stopped("a") == "shutdown"
        assert await children(sup) == [("b", b)]
        with pytest.raises(SupervisorError) as info:
            await DynamicSupervisor.terminate_child(sup, a)
        assert info.value.reason == "not_found"

    run(main)


def test_start_child_errors(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await DynamicSupervisor.start_link()
        with pytest.raises(StartError) as info:
            await DynamicSupervisor.start_child(sup, flaky(me, "f", ["fail"]))
        assert info.value.reason == ("init_failed", "f")
        with pytest.raises(InvalidChildSpec):
            await DynamicSupervisor.start_child(sup, "not a spec")  # type: ignore[arg-type]
        assert await children(sup) == []

    run(main)


def test_max_children(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await DynamicSupervisor.start_link(max_children=2)
        first = await DynamicSupervisor.start_child(sup, worker(me, "a"))
        await DynamicSupervisor.start_child(sup, worker(me, "b"))
        with pytest.raises(SupervisorError) as info:
            await DynamicSupervisor.start_child(sup, worker(me, "c"))
        assert info.value.reason == "max_children"
        assert first is not None
        await DynamicSupervisor.terminate_child(sup, first)
        await DynamicSupervisor.start_child(sup, worker(me, "c"))  # room again
        for tag in "abc":
            await started(tag)

    run(main)


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="max_children"):
        DynamicSupervisor.child_spec(max_children=-1)
    with pytest.raises(ValueError, match="max_children"):
        DynamicSupervisor.child_spec(max_children=True)
    with pytest.raises(ValueError, match="max_seconds"):
        DynamicSupervisor.child_spec(max_seconds=0)


@pytest.mark.parametrize(
    ("restart", "reason", "restarted"),
    [
        ("permanent", "normal", True),
        ("permanent", "boom", True),
        ("transient", "normal", False),
        ("transient", "shutdown", False),
        ("transient", "boom", True),
        ("temporary", "boom", False),
    ],
)
def test_restarts(run: Runner, restart: str, reason: Any, restarted: bool) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await DynamicSupervisor.start_link()
        pid = await DynamicSupervisor.start_child(sup, worker(me, "w", restart=restart))
        assert pid == await started("w")
        cast(pid, ("exit", reason))
        assert await down(pid) == reason
        if restarted:
            new = await started("w")
            assert new != pid
            assert await children(sup) == [("w", new)]
        else:
            assert await children(sup) == []

    run(main)


def test_intensity_breach_stops_it_and_its_children(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await DynamicSupervisor.start(max_restarts=1, max_seconds=100 * UNIT)
        sup_down = watch(sup)
        crashing = await DynamicSupervisor.start_child(sup, worker(me, "w"))
        await DynamicSupervisor.start_child(sup, worker(me, "other"))
        assert crashing == await started("w")
        exit_signal(crashing, "kill")
        exit_signal(await started("w"), "kill")
        assert await sup_down == "shutdown"
        assert await stopped("other") == "shutdown"

    run(main)


def test_a_failed_restart_is_retried_and_counted(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await DynamicSupervisor.start(max_restarts=2, max_seconds=100 * UNIT)
        sup_down = watch(sup)
        plan = ["ok", "fail", "ok"]
        pid = await DynamicSupervisor.start_child(sup, flaky(me, "f", plan))
        assert pid == await started("f")
        exit_signal(pid, "kill")
        new = await started("f")  # one failed try, then success: two restarts
        assert receive_nowait(lambda m: m == ("failed", "f"))
        exit_signal(new, "kill")  # a third restart breaches
        assert await sup_down == "shutdown"

    run(main)


def test_shutdown_stops_every_child_within_its_shutdown_time(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await DynamicSupervisor.start()
        for tag in "ab":
            await DynamicSupervisor.start_child(sup, worker(me, tag))
        stubborn_pid = await DynamicSupervisor.start_child(sup, spawned(stubborn, me, "s", shutdown=SHORT))
        killed = await DynamicSupervisor.start_child(sup, worker(me, "k", shutdown="brutal_kill"))
        assert stubborn_pid is not None
        assert killed is not None
        stubborn_down, killed_down = watch(stubborn_pid), watch(killed)
        await DynamicSupervisor.stop(sup, "shutdown")
        # Everything has exited by the time stop returns.
        assert await stubborn_down == "killed"
        assert await killed_down == "killed"
        stops = {receive_nowait(lambda m: m[0] == "stopped") for _ in range(2)}
        assert stops == {("stopped", "a", "shutdown"), ("stopped", "b", "shutdown")}
        assert receive_nowait(lambda m: m[0] == "stopped", None) is None  # k was brutally killed

    run(main)


def test_as_a_child_of_a_supervisor(run: Runner) -> None:
    async def main() -> None:
        from alight.actors import Supervisor, which_children

        me = self_pid()
        top = await Supervisor.start([DynamicSupervisor.child_spec(id="dyn", name="dyn")])
        await DynamicSupervisor.start_child("dyn", worker(me, "w"))
        await started("w")
        [row] = await which_children(top)
        assert (row.id, row.type, row.shutdown) == ("dyn", "supervisor", "infinity")
        await Supervisor.stop(top, "shutdown")
        assert receive_nowait(lifecycle) == ("stopped", "w", "shutdown")

    run(main)
