"""Monitors: one-way, one `Down` per monitor with the exit reason, ``noproc`` for the dead."""

from __future__ import annotations

from typing import Any

from testkit import UNIT, Runner, equals

from alight import actors
from alight.actors import (
    NOCONNECTION,
    NOPROC,
    Down,
    Pid,
    demonitor,
    monitor,
    process_info,
    receive,
    receive_nowait,
    self_pid,
    send,
    spawn,
    spawn_monitor,
)

WAIT = 5 * UNIT


async def idle() -> None:
    await receive()


async def wait_then_exit(report_to: Pid) -> None:
    send(report_to, ("ready", self_pid()))
    reason = await receive()
    actors.exit(self_pid(), reason)


def test_down_carries_the_reason(run: Runner) -> None:
    async def main() -> list[Any]:
        results = []
        for reason in ("normal", "shutdown", ("shutdown", 1), "boom"):
            pid = spawn(wait_then_exit, self_pid())
            await receive(equals(("ready", pid)), timeout=WAIT)
            ref = monitor(pid)
            send(pid, reason)
            down = await receive(Down, timeout=WAIT)
            assert (down.ref, down.pid) == (ref, pid)
            results.append(down.reason)
        return results

    assert run(main) == ["normal", "shutdown", ("shutdown", 1), "boom"]


def test_monitor_is_one_way(run: Runner) -> None:
    async def watcher(target: Pid, report_to: Pid) -> None:
        monitor(target)
        send(report_to, "watching")
        send(report_to, await receive())

    async def main() -> None:
        target = spawn(idle)
        w, _ = spawn_monitor(watcher, target, self_pid())
        await receive(equals("watching"), timeout=WAIT)
        # the watcher dying does not affect the target
        actors.exit(w, "bye")
        await receive(lambda m: type(m) is Down and m.pid == w, timeout=WAIT)
        info = process_info(target)
        assert info is not None
        assert info.monitored_by == ()
        send(target, "stop")

    run(main)


def test_monitoring_a_dead_pid_gives_noproc_at_once(run: Runner) -> None:
    async def main() -> None:
        pid, _ = spawn_monitor(idle)
        send(pid, "stop")
        await receive(Down, timeout=WAIT)
        ref = monitor(pid)
        assert receive_nowait(default=None) == Down(ref, pid, NOPROC)
        me = self_pid()
        never = Pid(me.node, me.creation, 10**9)
        ref = monitor(never)
        assert receive_nowait(default=None) == Down(ref, never, NOPROC)
        # a pid of another node without distribution: the connection is down
        remote = Pid("elsewhere@h", 1, 1)
        ref = monitor(remote)
        assert receive_nowait(default=None) == Down(ref, remote, NOCONNECTION)

    run(main)


def test_demonitor_stops_the_down(run: Runner) -> None:
    async def main() -> None:
        pid, ref = spawn_monitor(idle)
        assert demonitor(ref) is True
        assert demonitor(ref) is False
        later = monitor(pid)  # to know when it is gone
        send(pid, "stop")
        down = await receive(Down, timeout=WAIT)
        assert down.ref == later
        assert receive_nowait(default=None) is None
        info = process_info(self_pid())
        assert info is not None
        assert info.monitors == ()

    run(main)


def test_demonitor_flush_drops_a_queued_down(run: Runner) -> None:
    async def main() -> None:
        pid, ref = spawn_monitor(idle)
        other = monitor(pid)
        send(pid, "stop")
        await receive(lambda m: type(m) is Down and m.ref == other, timeout=WAIT)
        send(self_pid(), "after")
        # the Down for `ref` is queued now; the monitor itself is already gone
        handled = _handled()
        assert demonitor(ref, flush=True) is False
        assert receive_nowait(default=None) == "after"
        # flushing is bookkeeping, not a message handled
        assert _handled() == handled + 1

    run(main)


def _handled() -> int:
    info = process_info(self_pid())
    assert info is not None
    return info.messages_handled


def test_multiple_monitors_give_one_down_each(run: Runner) -> None:
    async def main() -> None:
        pid = spawn(idle)
        refs = [monitor(pid) for _ in range(3)]
        assert len(set(refs)) == 3
        info = process_info(pid)
        assert info is not None
        assert info.monitored_by == (self_pid(),) * 3
        demonitor(refs[1])
        send(pid, "stop")
        downs = [await receive(Down, timeout=WAIT) for _ in range(2)]
        assert sorted(down.ref for down in downs) == sorted([refs[0], refs[2]])
        assert all(down.reason == "normal" for down in downs)
        assert receive_nowait(Down, default=None) is None

    run(main)


def test_many_watchers_all_get_down(run: Runner) -> None:
    async def watcher(target: Pid, report_to: Pid) -> None:
        ref = monitor(target)
        send(report_to, "watching")
        down: Down = await receive(Down)
        send(report_to, (down.ref == ref, down.reason))

    async def main() -> list[Any]:
        target = spawn(idle)
        for _ in range(5):
            spawn(watcher, target, self_pid())
        for _ in range(5):
            await receive(equals("watching"), timeout=WAIT)
        actors.exit(target, "gone")
        return [await receive(tuple, timeout=WAIT) for _ in range(5)]

    assert run(main) == [(True, "gone")] * 5


def test_a_dead_watcher_leaves_no_monitor_behind(run: Runner) -> None:
    async def watcher(target: Pid) -> None:
        monitor(target)

    async def main() -> None:
        target = spawn(idle)
        w, _ = spawn_monitor(watcher, target)
        await receive(lambda m: type(m) is Down and m.pid == w, timeout=WAIT)
        info = process_info(target)
        assert info is not None
        assert info.monitored_by == ()
        send(target, "stop")

    run(main)
