"""Links and exit signals, with Erlang's semantics.

- a link is bidirectional; an abnormal exit kills linked processes that do not trap
  exits, and reaches those that do as an `Exit` message (so cascades stop there);
- ``"normal"`` never kills a linked process;
- ``actors.exit(pid, "kill")`` cannot be trapped, and linked processes see ``"killed"``.
"""

from __future__ import annotations

from typing import Any

import pytest
from testkit import UNIT, Runner, equals

from alight import actors
from alight.actors import (
    KILLED,
    NOPROC,
    Down,
    Exit,
    ExitProcess,
    NoProc,
    Pid,
    link,
    monitor,
    process_info,
    receive,
    receive_nowait,
    self_pid,
    send,
    spawn,
    spawn_link,
    spawn_monitor,
    trap_exit,
    unlink,
)

WAIT = 5 * UNIT


async def idle() -> None:
    """Waits until told ``"stop"`` (or ``("exit", reason)``)."""
    message = await receive()
    if isinstance(message, tuple) and message[0] == "exit":
        raise ExitProcess(message[1])


async def trapper(report_to: Pid) -> None:
    """Traps exits and forwards every `Exit` it gets to ``report_to``."""
    trap_exit()
    send(report_to, ("trapping", self_pid()))
    while True:
        message = await receive()
        if message == "stop":
            return
        send(report_to, ("got", self_pid(), message))


async def linked_to(pid: Pid, report_to: Pid) -> None:
    link(pid)
    send(report_to, ("linked", self_pid()))
    await receive()


async def down_of(pid: Pid) -> Down:
    message: Down = await receive(lambda m: type(m) is Down and m.pid == pid, timeout=WAIT)
    return message


def test_abnormal_exit_propagates_both_ways(run: Runner) -> None:
    async def main() -> None:
        # child -> linked parent
        a = spawn(idle)
        b = spawn(linked_to, a, self_pid())
        await receive(equals(("linked", b)), timeout=WAIT)
        monitor(a)
        monitor(b)
        send(a, ("exit", "boom"))
        assert (await down_of(a)).reason == "boom"
        assert (await down_of(b)).reason == "boom"
        # the other direction: the process that called link dies first
        c = spawn(idle)
        d = spawn(linked_to, c, self_pid())
        await receive(equals(("linked", d)), timeout=WAIT)
        monitor(c)
        monitor(d)
        actors.exit(d, "bang")
        assert (await down_of(d)).reason == "bang"
        assert (await down_of(c)).reason == "bang"

    run(main)


def test_a_crash_propagates_as_the_exception(run: Runner) -> None:
    async def crasher() -> None:
        await receive()
        raise RuntimeError("kaboom")

    async def parent(report_to: Pid) -> None:
        child = spawn_link(crasher)
        send(report_to, ("child", child))
        await receive()

    async def main() -> None:
        p, _ = spawn_monitor(parent, self_pid())
        _, child = await receive(lambda m: isinstance(m, tuple) and m[0] == "child", timeout=WAIT)
        send(child, "go")
        down = await down_of(p)
        assert isinstance(down.reason, RuntimeError)
        assert str(down.reason) == "kaboom"

    run(main)


def test_link_cascade_stops_at_a_process_that_traps_exits(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        b = spawn(trapper, me)
        await receive(equals(("trapping", b)), timeout=WAIT)
        c = spawn(linked_to, b, me)  # C - B
        await receive(equals(("linked", c)), timeout=WAIT)
        a = spawn(linked_to, b, me)  # A - B: a second neighbour, which must survive
        await receive(equals(("linked", a)), timeout=WAIT)
        for pid in (a, b, c):
            monitor(pid)
        actors.exit(c, "crash")
        assert (await down_of(c)).reason == "crash"
        got = await receive(lambda m: isinstance(m, tuple) and m[0] == "got", timeout=WAIT)
        assert got == ("got", b, Exit(c, "crash"))
        # B traps: it lives on, and so does everything else linked to it.
        send(b, "noop")
        await receive(equals(("got", b, "noop")), timeout=WAIT)
        assert receive_nowait(Down, default=None) is None
        info = process_info(b)
        assert info is not None
        assert c not in info.links
        assert a in info.links

    run(main)


def test_chain_a_b_c_where_b_traps(run: Runner) -> None:
    async def middle(report_to: Pid) -> None:
        # B: links to A, traps exits, spawns C linked to itself.
        trap_exit()
        c = spawn_link(idle)
        send(report_to, ("c", c))
        while True:
            message = await receive()
            send(report_to, ("b got", message))

    async def top(report_to: Pid) -> None:
        # A
        b = spawn_link(middle, report_to)
        send(report_to, ("b", b))
        await receive()

    async def main() -> None:
        me = self_pid()
        a, _ = spawn_monitor(top, me)
        _, b = await receive(lambda m: isinstance(m, tuple) and m[0] == "b", timeout=WAIT)
        _, c = await receive(lambda m: isinstance(m, tuple) and m[0] == "c", timeout=WAIT)
        monitor(b)
        monitor(c)
        send(c, ("exit", "c failed"))
        assert (await down_of(c)).reason == "c failed"
        assert await receive(lambda m: isinstance(m, tuple) and m[0] == "b got", timeout=WAIT) == (
            "b got",
            Exit(c, "c failed"),
        )
        assert process_info(a) is not None
        assert process_info(b) is not None
        assert receive_nowait(Down, default=None) is None

    run(main)


def test_kill_cannot_be_trapped_and_links_see_killed(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        victim = spawn(trapper, me)
        await receive(equals(("trapping", victim)), timeout=WAIT)
        bystander = spawn(linked_to, victim, me)  # does not trap
        await receive(equals(("linked", bystander)), timeout=WAIT)
        monitor(victim)
        monitor(bystander)
        actors.exit(victim, "kill")
        assert (await down_of(victim)).reason == KILLED
        # "killed" is abnormal: a non-trapping linked process dies with it
        assert (await down_of(bystander)).reason == KILLED
        assert receive_nowait(lambda m: isinstance(m, tuple) and m[0] == "got", None) is None

    run(main)


def test_kill_reaches_a_trapping_linked_process_as_killed(run: Runner) -> None:
    async def main() -> None:
        trap_exit()
        victim = spawn_link(trapper, self_pid())
        await receive(equals(("trapping", victim)), timeout=WAIT)
        actors.exit(victim, "kill")
        assert await receive(Exit, timeout=WAIT) == Exit(victim, KILLED)

    run(main)


def test_normal_exit_does_not_kill_a_linked_process(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        quitter = spawn(idle)
        stayer = spawn(linked_to, quitter, me)
        await receive(equals(("linked", stayer)), timeout=WAIT)
        monitor(quitter)
        monitor(stayer)
        send(quitter, "stop")
        assert (await down_of(quitter)).reason == "normal"
        # the link is gone, the process lives
        info = process_info(stayer)
        assert info is not None
        assert quitter not in info.links
        # a trapping process sees the normal exit as a message
        trap_exit()
        other = spawn_link(idle)
        send(other, "stop")
        assert await receive(Exit, timeout=WAIT) == Exit(other, "normal")

    run(main)


def test_exit_normal_is_ignored_unless_trapping(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        plain = spawn(idle)
        monitor(plain)
        actors.exit(plain, "normal")
        trapping = spawn(trapper, me)
        await receive(equals(("trapping", trapping)), timeout=WAIT)
        actors.exit(trapping, "normal")
        assert await receive(lambda m: isinstance(m, tuple) and m[0] == "got", timeout=WAIT) == (
            "got",
            trapping,
            Exit(me, "normal"),
        )
        assert process_info(plain) is not None
        send(plain, "stop")
        assert (await down_of(plain)).reason == "normal"

    run(main)


def test_exit_with_a_reason_kills_or_is_delivered(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        plain = spawn(idle)
        monitor(plain)
        actors.exit(plain, "shutdown")
        assert (await down_of(plain)).reason == "shutdown"
        trapping = spawn(trapper, me)
        await receive(equals(("trapping", trapping)), timeout=WAIT)
        actors.exit(trapping, {"why": 1})
        got = await receive(lambda m: isinstance(m, tuple) and m[0] == "got", timeout=WAIT)
        assert got == ("got", trapping, Exit(me, {"why": 1}))
        actors.exit(Pid(me.node, me.creation, 10**9), "kill")  # a dead pid: nothing happens

    run(main)


@pytest.mark.parametrize("reason", ["normal", "shutdown", "custom"])
def test_exit_self_without_trapping_ends_the_caller_now(run: Runner, reason: str) -> None:
    async def quit_with(reason: str, log: list[str]) -> None:
        actors.exit(self_pid(), reason)
        log.append("still running")  # pragma: no cover - must not happen

    async def main() -> tuple[Any, list[str]]:
        log: list[str] = []
        spawn_monitor(quit_with, reason, log)
        return (await receive(Down, timeout=WAIT)).reason, log

    assert run(main) == (reason, [])


def test_exit_self_while_trapping_is_a_message(run: Runner) -> None:
    async def main() -> Any:
        trap_exit()
        actors.exit(self_pid(), "reason")
        return await receive(Exit, timeout=WAIT)

    result = run(main)
    assert result.reason == "reason"


def test_exit_self_kill_ends_even_a_trapping_caller(run: Runner) -> None:
    async def suicide(log: list[str]) -> None:
        trap_exit()
        actors.exit(self_pid(), "kill")
        log.append("still running")  # pragma: no cover - must not happen

    async def main() -> tuple[Any, list[str]]:
        log: list[str] = []
        spawn_monitor(suicide, log)
        return (await receive(Down, timeout=WAIT)).reason, log

    assert run(main) == (KILLED, [])


def test_link_to_a_dead_pid(run: Runner) -> None:
    async def main() -> None:
        dead, _ = spawn_monitor(idle)
        send(dead, "stop")
        await down_of(dead)
        with pytest.raises(NoProc):
            link(dead)
        trap_exit()
        link(dead)
        assert await receive(Exit, timeout=WAIT) == Exit(dead, NOPROC)

    run(main)


def test_link_is_idempotent_and_self_link_is_a_no_op(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        other = spawn(idle)
        link(other)
        link(other)
        link(me)
        info = process_info(me)
        assert info is not None
        assert info.links == (other,)
        send(other, "stop")

    run(main)


def test_unlink(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        other = spawn(idle)
        link(other)
        unlink(other)
        unlink(other)  # idempotent
        for pid in (me, other):
            info = process_info(pid)
            assert info is not None
            assert info.links == ()
        monitor(other)
        actors.exit(other, "boom")
        assert (await down_of(other)).reason == "boom"
        # we are still alive: the link is gone
        unlink(other)  # a dead pid: nothing happens

    run(main)


def test_cleanup_runs_before_links_are_told(run: Runner) -> None:
    async def careful(report_to: Pid, log: list[str]) -> None:
        try:
            send(report_to, "ready")
            await receive()
        finally:
            log.append("cleaned up")

    async def main() -> list[str]:
        log: list[str] = []
        pid, _ = spawn_monitor(careful, self_pid(), log)
        await receive(equals("ready"), timeout=WAIT)
        actors.exit(pid, "shutdown")
        assert (await down_of(pid)).reason == "shutdown"
        return log

    assert run(main) == ["cleaned up"]
