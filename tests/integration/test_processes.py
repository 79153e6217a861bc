"""Processes: spawning, identity, sending, crashes as exit reasons, bad use outside a process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from testkit import UNIT, Runner, equals

from alight import actors
from alight.actors import (
    KILLED,
    Actor,
    Down,
    Exit,
    ExitProcess,
    NotInProcess,
    Pid,
    Ref,
    UnknownName,
    cancel_timer,
    current_node,
    demonitor,
    link,
    make_ref,
    monitor,
    process_info,
    processes,
    receive,
    receive_nowait,
    register,
    run_blocking,
    self_pid,
    send,
    send_after,
    spawn,
    spawn_link,
    spawn_monitor,
    trap_exit,
    unlink,
    unregister,
    whereis,
)

WAIT = 5 * UNIT


async def echo() -> None:
    """Replies to ``(sender, term)`` with ``term`` until it gets ``"stop"``."""
    while True:
        message = await receive()
        if message == "stop":
            return
        sender, term = message
        send(sender, term)


async def crash_on(message: Any) -> None:
    got = await receive()
    raise ValueError(f"crashed on {got!r}, expecting {message!r}")


class Counter(Actor):
    def __init__(self, start: int) -> None:
        self.count = start

    async def run(self) -> int:
        while True:
            message = await receive()
            if message == "stop":
                return self.count
            sender = message
            self.count += 1
            send(sender, (self.pid, self.count))


def test_spawn_a_function(run: Runner) -> None:
    async def main() -> Any:
        pid = spawn(echo)
        assert isinstance(pid, Pid)
        assert pid != self_pid()
        send(pid, (self_pid(), "hello"))
        return await receive(timeout=WAIT)

    assert run(main) == "hello"


def test_spawn_passes_arguments(run: Runner) -> None:
    async def add(a: int, b: int, reply_to: Pid) -> None:
        send(reply_to, a + b)

    async def main() -> Any:
        spawn(add, 2, 3, self_pid())
        return await receive(timeout=WAIT)

    assert run(main) == 5


def test_spawn_an_actor_class(run: Runner) -> None:
    async def main() -> list[Any]:
        pid = spawn(Counter, 10)
        send(pid, self_pid())
        send(pid, self_pid())
        return [await receive(timeout=WAIT), await receive(timeout=WAIT)]

    first, second = run(main)
    assert first[1] == 11
    assert second[1] == 12
    assert first[0] == second[0]


def test_spawn_rejects_what_is_not_a_body(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="Actor subclass"):
            spawn(int)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="async function"):
            spawn(42)  # type: ignore[arg-type]

    run(main)


def test_self_pid_is_stable_and_unique(run: Runner) -> None:
    async def report(to: Pid) -> None:
        send(to, self_pid())

    async def main() -> None:
        me = self_pid()
        assert self_pid() == me
        children = [spawn(report, me) for _ in range(5)]
        got = [await receive(timeout=WAIT) for _ in children]
        assert sorted(got) == sorted(children)
        assert len(set(children) | {me}) == 6
        assert current_node().name == me.node

    run(main)


def test_spawn_link_links_both_ways(run: Runner) -> None:
    async def main() -> None:
        trap_exit()
        pid = spawn_link(crash_on, "x")
        info = process_info(pid)
        assert info is not None
        assert self_pid() in info.links
        me = process_info(self_pid())
        assert me is not None
        assert pid in me.links
        send(pid, "go")
        exit_ = await receive(Exit, timeout=WAIT)
        assert exit_.pid == pid
        assert isinstance(exit_.reason, ValueError)

    run(main)


def test_spawn_monitor_reports_the_exit(run: Runner) -> None:
    async def main() -> None:
        pid, ref = spawn_monitor(echo)
        send(pid, "stop")
        down = await receive(Down, timeout=WAIT)
        assert down == Down(ref, pid, "normal")

    run(main)


def test_send_to_a_dead_or_unknown_pid_never_fails(run: Runner) -> None:
    async def main() -> None:
        pid, _ = spawn_monitor(echo)
        send(pid, "stop")
        await receive(Down, timeout=WAIT)
        send(pid, "anyone there?")
        me = self_pid()
        send(Pid(me.node, me.creation, 10**9), "never spawned")
        send(Pid(me.node, me.creation + 1, me.serial), "previous incarnation")
        send(Pid("elsewhere@h", 1, 1), "no distribution: dropped")
        assert receive_nowait(default=None) is None

    run(main)


def test_send_to_an_unregistered_name_raises(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(UnknownName, match="nobody"):
            send("nobody", "hello")
        with pytest.raises(TypeError, match="destination"):
            send(42, "hello")  # type: ignore[arg-type]

    run(main)


def test_messages_between_two_processes_keep_their_order(run: Runner) -> None:
    async def producer(to: Pid, n: int) -> None:
        for i in range(n):
            send(to, i)
            if i % 7 == 0:
                await asyncio.sleep(0)

    async def main() -> list[Any]:
        spawn(producer, self_pid(), 200)
        return [await receive(timeout=WAIT) for _ in range(200)]

    assert run(main) == list(range(200))


def test_a_crash_becomes_the_exit_reason(run: Runner) -> None:
    async def main() -> None:
        pid, ref = spawn_monitor(crash_on, "x")
        send(pid, "boom")
        down = await receive(Down, timeout=WAIT)
        assert down.ref == ref
        assert down.pid == pid
        assert isinstance(down.reason, ValueError)
        assert "crashed on 'boom'" in str(down.reason)
        assert down.reason.__traceback__ is not None

    run(main)


def test_exit_process_sets_the_reason(run: Runner) -> None:
    async def leave(reason: Any) -> None:
        raise ExitProcess(reason)

    async def main() -> list[Any]:
        reasons = []
        for reason in ("normal", "shutdown", ("shutdown", "bye"), {"custom": 1}):
            spawn_monitor(leave, reason)
            reasons.append((await receive(Down, timeout=WAIT)).reason)
        return reasons

    assert run(main) == ["normal", "shutdown", ("shutdown", "bye"), {"custom": 1}]


def test_returning_is_a_normal_exit(run: Runner) -> None:
    async def main() -> Any:
        async def done() -> int:
            return 42

        spawn_monitor(done)
        return (await receive(Down, timeout=WAIT)).reason

    assert run(main) == "normal"


def test_a_crash_never_touches_unrelated_processes(run: Runner) -> None:
    async def main() -> None:
        bystanders = [spawn(echo) for _ in range(5)]
        watched = {monitor(pid): pid for pid in bystanders}
        for _ in range(3):
            crasher, _ = spawn_monitor(crash_on, "x")
            send(crasher, "boom")
            down = await receive(Down, timeout=WAIT)  # bystanders' monitors must stay silent
            assert down.pid == crasher
            assert isinstance(down.reason, ValueError)
        for pid in bystanders:
            send(pid, (self_pid(), pid))
            assert await receive(equals(pid), timeout=WAIT) == pid
        assert receive_nowait(Down, default=None) is None
        assert set(bystanders) <= set(processes())
        for ref in watched:
            demonitor(ref)

    run(main)


def test_a_process_killed_while_never_started_still_reports(run: Runner) -> None:
    async def main() -> Any:
        pid, _ = spawn_monitor(echo)
        actors.exit(pid, "kill")  # before the new task ever ran
        return (await receive(Down, timeout=WAIT)).reason

    assert run(main) == KILLED


def _api_calls() -> list[tuple[str, Callable[[], Any]]]:
    pid = Pid("x@h", 1, 1)
    return [
        ("self_pid", self_pid),
        ("current_node", current_node),
        ("spawn", lambda: spawn(echo)),
        ("spawn_link", lambda: spawn_link(echo)),
        ("spawn_monitor", lambda: spawn_monitor(echo)),
        ("send", lambda: send(pid, "x")),
        ("receive_nowait", receive_nowait),
        ("link", lambda: link(pid)),
        ("unlink", lambda: unlink(pid)),
        ("monitor", lambda: monitor(pid)),
        ("exit", lambda: actors.exit(pid, "kill")),
        ("trap_exit", trap_exit),
        ("register", lambda: register("n")),
        ("unregister", lambda: unregister("n")),
        ("whereis", lambda: whereis("n")),
        ("make_ref", make_ref),
        ("send_after", lambda: send_after(1, pid, "x")),
        ("cancel_timer", lambda: cancel_timer(Ref("x@h", 1, 1))),
        ("run_blocking", lambda: run_blocking(print)),
        ("processes", processes),
        ("process_info", lambda: process_info(pid)),
    ]


@pytest.mark.parametrize(("name", "call"), _api_calls(), ids=[name for name, _ in _api_calls()])
def test_api_outside_a_process_raises_not_in_process(name: str, call: Callable[[], Any]) -> None:
    with pytest.raises(NotInProcess):
        call()


def test_receive_outside_a_process_raises_not_in_process() -> None:
    async def outside() -> None:
        with pytest.raises(NotInProcess, match="inside an alight process"):
            await receive(timeout=0)

    asyncio.run(outside())
