"""The node: running main, owning everything, stopping cleanly; nodes share nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from testkit import UNIT, Runner, equals

from alight import actors
from alight.actors import (
    ActorError,
    Node,
    Pid,
    current_node,
    processes,
    receive,
    register,
    self_pid,
    send,
    spawn,
    whereis,
)

WAIT = 5 * UNIT


def fresh(name: str) -> Node:
    return Node(name, watchdog_threshold=None)


async def idle() -> None:
    await receive()


def test_run_returns_mains_value(run: Runner) -> None:
    async def main(a: int, b: int) -> int:
        return a * b

    assert run(main, 6, 7) == 42


def test_run_raises_mains_exception(run: Runner) -> None:
    async def main() -> None:
        raise ValueError("from main")

    with pytest.raises(ValueError, match="from main"):
        run(main)


def test_run_reports_a_main_that_was_killed(run: Runner) -> None:
    async def main() -> None:
        actors.exit(self_pid(), "kill")

    with pytest.raises(ActorError, match="killed"):
        run(main)


def test_a_node_can_run_again(node: Node) -> None:
    async def main() -> Pid:
        return self_pid()

    first = node.run(main)
    second = node.run(main)
    assert first != second
    assert not node.running
    with pytest.raises(ActorError, match="not running"):
        _ = node.loop


def test_stop_kills_leftover_processes(node: Node) -> None:
    cleaned: list[str] = []

    async def leftover(name: str, report_to: Pid) -> None:
        try:
            send(report_to, "ready")
            await receive()
        finally:
            cleaned.append(name)

    async def main() -> list[Pid]:
        pids = [spawn(leftover, f"p{i}", self_pid()) for i in range(3)]
        for _ in pids:
            await receive(equals("ready"), timeout=WAIT)
        return pids

    pids = node.run(main, debug=True)
    assert sorted(cleaned) == ["p0", "p1", "p2"]
    assert node.pids() == []
    assert all(node.lookup(pid) is None for pid in pids)


def test_two_nodes_in_one_interpreter_share_nothing() -> None:
    async def main() -> tuple[Node, Pid, list[Pid]]:
        register("same-name")
        spawn(idle)
        return current_node(), self_pid(), processes()

    a, b = fresh("a@127.0.0.1"), fresh("b@127.0.0.1")
    node_a, pid_a, procs_a = a.run(main, debug=True)
    node_b, pid_b, procs_b = b.run(main, debug=True)
    assert (node_a, node_b) == (a, b)
    assert pid_a.node == "a@127.0.0.1"
    assert pid_b.node == "b@127.0.0.1"
    assert not set(procs_a) & set(procs_b)


def test_two_nodes_on_one_loop_keep_their_processes_apart() -> None:
    async def who(report_to: Pid) -> None:
        send(report_to, (current_node().name, whereis("shared")))

    async def owner() -> tuple[str, Any]:
        register("shared")
        spawn(who, self_pid())
        result: tuple[str, Any] = await receive(timeout=WAIT)
        return result

    async def both() -> None:
        a, b = fresh("a@127.0.0.1"), fresh("b@127.0.0.1")
        await a.start()
        await b.start()
        try:
            name_a, shared_a = await a.execute(owner)
            name_b, shared_b = await b.execute(owner)
            assert (name_a, name_b) == ("a@127.0.0.1", "b@127.0.0.1")
            assert shared_a.node == "a@127.0.0.1"
            assert shared_b.node == "b@127.0.0.1"
            # a pid of node a means nothing to node b
            target = await a.execute(_spawn_idle)
            assert b.lookup(target) is None
            assert a.lookup(target) is not None
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(both(), debug=True)


async def _spawn_idle() -> Pid:
    return spawn(idle)


def test_execute_from_outside_any_process() -> None:
    async def add(a: int, b: int) -> int:
        return a + b

    async def fail() -> None:
        raise KeyError("inside")

    async def outside() -> None:
        node = fresh("x@127.0.0.1")
        with pytest.raises(ActorError, match="not running"):
            await node.execute(add, 1, 2)
        await node.start()
        try:
            with pytest.raises(ActorError, match="already running"):
                await node.start()
            assert await node.execute(add, 1, 2) == 3
            with pytest.raises(KeyError, match="inside"):
                await node.execute(fail)
            assert node.crashes == 0  # the caller got the error: it is not a crash
        finally:
            await node.stop()
        assert node.pids() == []
        await node.stop()  # stopping a stopped node does nothing

    asyncio.run(outside(), debug=True)


def test_plain_asyncio_loop(node: Node) -> None:
    async def main() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert Node("plain@h", use_uvloop=False, watchdog_threshold=None).run(main).startswith("asyncio")
    assert node.run(main).startswith("uvloop")


def test_stop_also_kills_what_cleanup_spawned(node: Node) -> None:
    async def heir() -> None:
        await receive()

    async def spawns_on_the_way_out(report_to: Pid) -> None:
        try:
            send(report_to, "ready")
            await receive()
        finally:
            spawn(heir)

    async def main() -> None:
        spawn(spawns_on_the_way_out, self_pid())
        await receive(equals("ready"), timeout=WAIT)

    node.run(main, debug=True)
    assert node.pids() == []
