"""Supervisor: OTP's start order, stop order, strategies, restart types, intensity
and escalation, shutdown kinds, and the child management API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from testkit import UNIT, Runner
from testkit.workers import down, flaky, lifecycle, slow_to_stop, spawned, started, stopped, stubborn, watch, worker

from alight.actors import (
    ChildCounts,
    ChildSpec,
    InvalidChildSpec,
    Pid,
    StartError,
    Supervisor,
    SupervisorError,
    cast,
    count_children,
    delete_child,
    receive,
    receive_nowait,
    restart_child,
    self_pid,
    send,
    spawn,
    start_child,
    terminate_child,
    which_children,
)
from alight.actors import (
    exit as exit_signal,
)

SHORT = 0.1 * UNIT
"""A shutdown time for children that are expected to stop promptly or be killed."""


async def pids(sup: Pid) -> dict[Any, Pid | None]:
    return {child.id: child.pid for child in await which_children(sup)}


async def three(strategy: Any, **options: Any) -> tuple[Pid, dict[str, Pid]]:
    """A supervisor of workers a, b, c (started unlinked from the test process)."""
    me = self_pid()
    sup = await Supervisor.start([worker(me, tag, shutdown=SHORT) for tag in "abc"], strategy=strategy, **options)
    return sup, {tag: await started(tag) for tag in "abc"}


def crash(pid: Pid | None) -> None:
    assert pid is not None
    exit_signal(pid, "kill")


# -- order ------------------------------------------------------------------------------


def test_children_start_in_order_and_stop_in_reverse(run: Runner) -> None:
    async def main() -> list[Any]:
        sup, _ = await three("one_for_one")
        await Supervisor.stop(sup, "shutdown")
        return [receive_nowait(lifecycle, None) for _ in range(3)]

    assert run(main) == [("stopped", "c", "shutdown"), ("stopped", "b", "shutdown"), ("stopped", "a", "shutdown")]


def test_start_link_returns_after_every_child_started(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await Supervisor.start_link([worker(me, "a"), worker(me, "b")])
        tags = [receive_nowait(lifecycle)[1], receive_nowait(lifecycle)[1]]
        assert tags == ["a", "b"]
        assert await count_children(sup) == ChildCounts(specs=2, active=2, supervisors=0, workers=2)

    run(main)


# -- strategies ---------------------------------------------------------------------------


def test_one_for_one_restarts_only_the_child_that_exited(run: Runner) -> None:
    async def main() -> None:
        sup, before = await three("one_for_one")
        crash(before["b"])
        new_b = await started("b")
        after = await pids(sup)
        assert after == {"a": before["a"], "b": new_b, "c": before["c"]}
        assert new_b != before["b"]
        assert receive_nowait(lifecycle, None) is None  # a and c were not touched

    run(main)


def test_one_for_all_restarts_every_child(run: Runner) -> None:
    async def main() -> None:
        sup, before = await three("one_for_all")
        crash(before["b"])
        # The others stop in reverse order, then all start in order.
        assert await stopped("c") == "shutdown"
        assert await stopped("a") == "shutdown"
        new = {tag: await started(tag) for tag in "abc"}
        assert await pids(sup) == new
        assert not set(new.values()) & set(before.values())

    run(main)


def test_rest_for_one_restarts_the_child_and_those_started_after_it(run: Runner) -> None:
    async def main() -> None:
        sup, before = await three("rest_for_one")
        crash(before["b"])
        assert await stopped("c") == "shutdown"
        new_b, new_c = await started("b"), await started("c")
        assert await pids(sup) == {"a": before["a"], "b": new_b, "c": new_c}
        assert new_b != before["b"]
        assert new_c != before["c"]
        assert receive_nowait(lifecycle, None) is None

    run(main)


def test_rest_for_one_on_the_last_child_restarts_only_it(run: Runner) -> None:
    async def main() -> None:
        sup, before = await three("rest_for_one")
        crash(before["c"])
        new_c = await started("c")
        assert await pids(sup) == {"a": before["a"], "b": before["b"], "c": new_c}

    run(main)


# -- restart types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "reason", "restarted"),
    [
        ("permanent", "normal", True),
        ("permanent", "shutdown", True),
        ("permanent", "boom", True),
        ("transient", "normal", False),
        ("transient", "shutdown", False),
        ("transient", ("shutdown", "bye"), False),
        ("transient", "boom", True),
        ("temporary", "boom", False),
        ("temporary", "normal", False),
    ],
)
def test_restart_types(run: Runner, restart: str, reason: Any, restarted: bool) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await Supervisor.start([worker(me, "w", restart=restart)], max_restarts=5)
        pid = await started("w")
        cast(pid, ("exit", reason))
        assert await down(pid) == reason
        if restarted:
            new = await started("w")
            assert await pids(sup) == {"w": new}
        elif restart == "temporary":
            # The supervisor handled the exit before our call (mailbox order).
            assert await pids(sup) == {}
        else:
            assert await pids(sup) == {"w": None}

    run(main)


# -- intensity and escalation -----------------------------------------------------------------


def test_intensity_breach_stops_the_supervisor_with_shutdown(run: Runner) -> None:
    async def main() -> None:
        sup, _ = await three("one_for_one", max_restarts=2, max_seconds=100 * UNIT)
        for _ in range(2):
            crash((await pids(sup))["a"])
            await started("a")
        crash((await pids(sup))["a"])
        assert await down(sup) == "shutdown"
        # Its other children were stopped in reverse order.
        assert await stopped("c") == "shutdown"
        assert await stopped("b") == "shutdown"

    run(main)


def test_max_restarts_zero_gives_up_on_the_first_exit(run: Runner) -> None:
    async def main() -> None:
        sup, before = await three("one_for_one", max_restarts=0)
        crash(before["a"])
        assert await down(sup) == "shutdown"

    run(main)


def test_intensity_escalates_through_two_levels(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        inner = Supervisor.child_spec([worker(me, "w")], id="inner", max_restarts=1, max_seconds=100 * UNIT)
        top = await Supervisor.start([inner], max_restarts=1, max_seconds=100 * UNIT)
        first_inner = (await pids(top))["inner"]
        assert first_inner is not None
        first_down = watch(first_inner)

        async def breach_inner() -> None:
            crash(await started("w"))  # restart 1 of the inner supervisor: allowed
            crash(await started("w"))  # restart 2: breach, the inner supervisor exits

        top_down = watch(top)
        await breach_inner()
        assert await first_down == "shutdown"
        # The top supervisor restarted it (its restart 1), which started w again.
        second_inner = (await pids(top))["inner"]
        assert second_inner not in (None, first_inner)
        assert second_inner is not None
        second_down = watch(second_inner)
        await breach_inner()
        assert await second_down == "shutdown"
        # Restart 2 of the top supervisor breaches too: the whole tree stops.
        assert await top_down == "shutdown"

    run(main)


def test_a_child_that_fails_to_restart_is_retried(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        plan = ["ok", "fail", "fail", "ok"]
        sup = await Supervisor.start([flaky(me, "f", plan)], max_restarts=3, max_seconds=100 * UNIT)
        crash(await started("f"))
        new = await started("f")  # after two failed tries, each counted
        assert receive_nowait(lambda m: m == ("failed", "f"))
        assert receive_nowait(lambda m: m == ("failed", "f"))
        assert await pids(sup) == {"f": new}
        # Three restarts are used up; one more breaches.
        crash(new)
        assert await down(sup) == "shutdown"

    run(main)


def test_failed_restarts_count_towards_intensity(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        plan = ["ok", "fail", "fail", "fail", "fail", "fail"]
        sup = await Supervisor.start([flaky(me, "f", plan)], max_restarts=2, max_seconds=100 * UNIT)
        crash(await started("f"))
        assert await down(sup) == "shutdown"
        assert plan == ["fail", "fail", "fail"]  # two tries were made, the third breached

    run(main)


# -- shutdown --------------------------------------------------------------------------------


def test_a_child_that_ignores_shutdown_is_killed_after_its_shutdown_time(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await Supervisor.start([spawned(stubborn, me, "s", shutdown=SHORT)])
        pid = await started("s")
        loop_time = asyncio.get_running_loop().time
        begun = loop_time()
        await terminate_child(sup, "s")
        assert loop_time() - begun >= SHORT * 0.9
        assert receive_nowait(lambda m: m[0] == "ignored")[2].reason == "shutdown"
        assert await down(pid) == "noproc"  # already gone when terminate_child returned
        assert await pids(sup) == {"s": None}

    run(main)


def test_brutal_kill_does_not_run_terminate(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await Supervisor.start([worker(me, "w", shutdown="brutal_kill")])
        pid = await started("w")
        reason = watch(pid)
        await terminate_child(sup, "w")
        assert await reason == "killed"
        assert receive_nowait(lifecycle, None) is None

    run(main)


def test_infinity_waits_for_the_child(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await Supervisor.start([spawned(slow_to_stop, me, "s", shutdown="infinity")])
        pid = await started("s")

        async def terminator() -> None:
            await terminate_child(sup, "s")
            send(me, "terminated")

        spawn(terminator)
        assert await receive(lambda m: m[0] == "got") == ("got", "s", "shutdown")
        assert receive_nowait(lambda m: m == "terminated", None) is None
        send(pid, "go")
        assert await receive(lambda m: m == "terminated") == "terminated"

    run(main)


def test_shutdown_timeout_of_a_supervisor_stop(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await Supervisor.start(
            [worker(me, "a", shutdown=SHORT), spawned(stubborn, me, "s", shutdown=SHORT), worker(me, "c")]
        )
        for tag in "asc":
            await started(tag)
        await Supervisor.stop(sup, "shutdown")
        assert receive_nowait(lifecycle) == ("stopped", "c", "shutdown")
        assert receive_nowait(lifecycle) == ("stopped", "a", "shutdown")

    run(main)


# -- child management ------------------------------------------------------------------------


def test_which_and_count_children(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        nested = Supervisor.child_spec([], id="nested")
        sup = await Supervisor.start_link([worker(me, "a", restart="transient"), nested])
        a = await started("a")
        rows = await which_children(sup)
        assert [(r.id, r.type, r.restart, r.shutdown) for r in rows] == [
            ("a", "worker", "transient", 5.0),
            ("nested", "supervisor", "permanent", "infinity"),
        ]
        assert rows[0].pid == a
        counts = await count_children(sup)
        assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (2, 2, 1, 1)
        await terminate_child(sup, "a")
        counts = await count_children(sup)
        assert (counts.specs, counts.active) == (2, 1)

    run(main)


def test_start_child_and_its_errors(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await Supervisor.start_link([worker(me, "a")])
        await started("a")
        b = await start_child(sup, worker(me, "b"))
        assert b == await started("b")
        assert list(await pids(sup)) == ["a", "b"]  # added last
        with pytest.raises(SupervisorError) as info:
            await start_child(sup, worker(me, "b"))
        assert (info.value.reason, info.value.child_id) == ("already_started", "b")
        await terminate_child(sup, "b")
        with pytest.raises(SupervisorError) as info:
            await start_child(sup, worker(me, "b"))
        assert info.value.reason == "already_present"
        with pytest.raises(StartError) as start_info:
            await start_child(sup, flaky(me, "c", ["fail"]))
        assert start_info.value.reason == ("init_failed", "c")
        assert list(await pids(sup)) == ["a", "b"]
        with pytest.raises(InvalidChildSpec):
            await start_child(sup, "not a spec")  # type: ignore[arg-type]

    run(main)


def test_terminate_restart_and_delete_child(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await Supervisor.start_link([worker(me, "a"), worker(me, "b")])
        a = await started("a")
        await started("b")
        with pytest.raises(SupervisorError) as info:
            await restart_child(sup, "a")
        assert info.value.reason == "running"
        with pytest.raises(SupervisorError) as info:
            await delete_child(sup, "a")
        assert info.value.reason == "running"
        await terminate_child(sup, "a")
        assert await stopped("a") == "shutdown"
        assert await down(a) == "noproc"
        assert (await pids(sup))["a"] is None
        new_a = await restart_child(sup, "a")
        assert new_a == await started("a")
        assert new_a != a
        await terminate_child(sup, "a")
        await delete_child(sup, "a")
        assert list(await pids(sup)) == ["b"]
        for operation in (terminate_child, restart_child, delete_child):
            with pytest.raises(SupervisorError) as info:
                await operation(sup, "a")
            assert (info.value.reason, info.value.child_id) == ("not_found", "a")

    run(main)


def test_terminate_child_removes_a_temporary_child(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        sup = await Supervisor.start_link([worker(me, "t", restart="temporary")])
        await started("t")
        await terminate_child(sup, "t")
        assert await pids(sup) == {}

    run(main)


# -- start failures and invalid specs -----------------------------------------------------------


def test_a_child_failing_at_start_fails_the_supervisor_and_stops_earlier_children(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        children = [worker(me, "a"), worker(me, "b"), flaky(me, "c", ["fail"]), worker(me, "d")]
        with pytest.raises(StartError) as info:
            await Supervisor.start_link(children)
        assert info.value.reason == ("failed_to_start_child", "c", ("init_failed", "c"))
        order = [receive_nowait(lifecycle)[:2] for _ in range(4)]
        assert order == [("started", "a"), ("started", "b"), ("stopped", "b"), ("stopped", "a")]
        assert receive_nowait(lifecycle, None) is None  # d never started

    run(main)


def test_invalid_child_specs_are_named_at_start_link(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        with pytest.raises(InvalidChildSpec) as info:
            await Supervisor.start_link([worker(me, "a"), worker(me, "a")])
        assert info.value.field == "id"
        with pytest.raises(InvalidChildSpec) as info:
            await Supervisor.start_link([worker(me, "a"), {"id": "b"}])  # type: ignore[list-item]
        assert info.value.field == "spec"
        with pytest.raises(ValueError, match="strategy"):
            await Supervisor.start_link([], strategy="one_for_some")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_restarts"):
            await Supervisor.start_link([], max_restarts=-1)
        # Nothing was started.
        assert receive_nowait(lifecycle, None) is None

    run(main)


def test_an_ignored_child_is_kept_as_not_running(run: Runner) -> None:
    async def main() -> None:
        sup = await Supervisor.start_link(
            [ChildSpec(id="none", start=lambda: None), ChildSpec(id="tmp", start=lambda: None, restart="temporary")]
        )
        assert await pids(sup) == {"none": None}

    run(main)
