"""Introspection: ``processes()`` and ``process_info(pid)`` (Erlang's ``process_info/1``)."""

from __future__ import annotations

from testkit import UNIT, Runner, equals

from alight import actors
from alight.actors import (
    Actor,
    Down,
    Pid,
    current_node,
    link,
    monitor,
    process_info,
    processes,
    receive,
    register,
    self_pid,
    send,
    spawn,
    spawn_monitor,
    trap_exit,
)

WAIT = 5 * UNIT


async def worker(report_to: Pid) -> None:
    register("worker")
    for _ in range(3):
        await receive(equals("work"))
    send(report_to, "did three")
    await receive(equals("stop"))


class Sleeper(Actor):
    async def run(self) -> None:
        await receive()


def test_processes_lists_the_live_ones_oldest_first(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        before = processes()
        assert me in before
        assert current_node().root in before
        children = [spawn(Sleeper) for _ in range(3)]
        now = processes()
        assert now[-3:] == children
        assert now == sorted(now)
        pid, _ = spawn_monitor(Sleeper)
        send(pid, "stop")
        await receive(Down, timeout=WAIT)
        assert pid not in processes()
        for child in children:
            actors.exit(child, "kill")
        assert processes() == before

    run(main)


def test_process_info_fields(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        pid = spawn(worker, me)
        # Queued first, so that the worker has scanned them and waits when we look.
        send(pid, "queued 1")
        send(pid, "queued 2")
        for _ in range(3):
            send(pid, "work")
        await receive(equals("did three"), timeout=WAIT)
        link(pid)
        ref = monitor(pid)
        info = process_info(pid)
        assert info is not None
        assert info.pid == pid
        assert info.name == "worker"
        assert info.entry.endswith("worker")
        assert info.status == "waiting"
        assert info.mailbox_length == 2
        assert info.messages_handled == 3
        assert info.links == (me,)
        assert info.monitors == ()
        assert info.monitored_by == (me,)
        assert info.trap_exit is False
        assert info.callback is None

        mine = process_info(me)
        assert mine is not None
        assert mine.status == "running"
        assert mine.monitors == (ref,)
        assert mine.links == (pid,)
        assert mine.name is None
        assert mine.entry.endswith("main")
        trap_exit()
        mine = process_info(me)
        assert mine is not None
        assert mine.trap_exit is True

        send(pid, "stop")
        assert (await receive(Down, timeout=WAIT)).pid == pid
        assert process_info(pid) is None

    run(main)


def test_process_info_names_an_actor_class(run: Runner) -> None:
    async def main() -> str:
        pid = spawn(Sleeper)
        info = process_info(pid)
        assert info is not None
        assert info.status == "runnable"  # spawned, not yet run
        actors.exit(pid, "kill")
        return info.entry

    assert run(main).endswith("Sleeper")


def test_process_info_of_another_node_is_none(run: Runner) -> None:
    async def main() -> None:
        assert process_info(Pid("elsewhere@h", 1, 1)) is None

    run(main)


def test_status_is_exiting_during_cleanup(run: Runner) -> None:
    async def slow_cleanup(report_to: Pid) -> None:
        try:
            send(report_to, "ready")
            await receive()
        finally:
            send(report_to, ("cleaning", process_info(self_pid())))
            await receive(equals("done"))

    async def main() -> None:
        pid, _ = spawn_monitor(slow_cleanup, self_pid())
        await receive(equals("ready"), timeout=WAIT)
        actors.exit(pid, "shutdown")
        _, info = await receive(tuple, timeout=WAIT)
        assert info.status == "exiting"
        outside = process_info(pid)
        assert outside is not None
        assert outside.status == "exiting"
        send(pid, "done")
        assert (await receive(Down, timeout=WAIT)).reason == "shutdown"

    run(main)
