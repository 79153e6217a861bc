"""Registered names and timers (``register``/``whereis``, ``erlang:send_after``)."""

from __future__ import annotations

import asyncio

import pytest
from testkit import UNIT, Runner

from alight import actors
from alight.actors import (
    Down,
    NameTaken,
    NoProc,
    Pid,
    UnknownName,
    cancel_timer,
    current_node,
    receive,
    receive_nowait,
    register,
    self_pid,
    send,
    send_after,
    spawn,
    spawn_monitor,
    unregister,
    whereis,
)

WAIT = 5 * UNIT


async def forward(to: Pid) -> None:
    while True:
        message = await receive()
        if message == "stop":
            return
        send(to, ("forwarded", message))


def test_register_whereis_unregister(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        assert whereis("main") is None
        register("main")
        assert whereis("main") == me
        other = spawn(forward, me)
        register("fwd", other)
        assert sorted(current_node().registered()) == ["alight.root", "fwd", "main"]
        unregister("fwd")
        assert whereis("fwd") is None
        with pytest.raises(UnknownName):
            unregister("fwd")
        register("fwd2", other)  # a process may get a new name once unregistered
        send(other, "stop")

    run(main)


def test_name_taken(run: Runner) -> None:
    async def main() -> None:
        me = self_pid()
        register("one")
        other = spawn(forward, me)
        with pytest.raises(NameTaken, match="already registered"):
            register("one", other)
        with pytest.raises(NameTaken, match="already registered as 'one'"):
            register("two")  # one name per process, as in Erlang
        assert whereis("two") is None
        send(other, "stop")

    run(main)


def test_register_a_dead_pid_raises_no_proc(run: Runner) -> None:
    async def main() -> None:
        pid, _ = spawn_monitor(forward, self_pid())
        send(pid, "stop")
        await receive(Down, timeout=WAIT)
        with pytest.raises(NoProc):
            register("ghost", pid)
        assert whereis("ghost") is None

    run(main)


def test_send_to_a_name(run: Runner) -> None:
    async def main() -> object:
        pid = spawn(forward, self_pid())
        register("fwd", pid)
        send("fwd", "hello")
        return await receive(timeout=WAIT)

    assert run(main) == ("forwarded", "hello")


def test_name_is_freed_when_the_process_dies(run: Runner) -> None:
    async def main() -> None:
        pid, _ = spawn_monitor(forward, self_pid())
        register("fwd", pid)
        actors.exit(pid, "boom")
        await receive(Down, timeout=WAIT)
        assert whereis("fwd") is None
        with pytest.raises(UnknownName):
            send("fwd", "anyone?")
        register("fwd")  # free for another process
        assert whereis("fwd") == self_pid()

    run(main)


def test_send_after_delivers(run: Runner) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        send_after(0.05 * UNIT, self_pid(), "late")
        send_after(0.01 * UNIT, self_pid(), "early")
        assert await receive(timeout=WAIT) == "early"
        assert await receive(timeout=WAIT) == "late"
        assert loop.time() - started >= 0.04 * UNIT

    run(main)


def test_send_after_to_a_name(run: Runner) -> None:
    async def main() -> None:
        register("me")
        send_after(0, "me", "by name")
        assert await receive(timeout=WAIT) == "by name"
        # a name that is gone when the timer fires: the message is dropped
        ref = send_after(0, "nobody", "lost")
        send_after(0.01 * UNIT, self_pid(), "after")
        assert await receive(timeout=WAIT) == "after"
        assert cancel_timer(ref) is None

    run(main)


def test_cancel_timer(run: Runner) -> None:
    async def main() -> None:
        ref = send_after(10 * UNIT, self_pid(), "never")
        remaining = cancel_timer(ref)
        assert remaining is not None
        assert 9 * UNIT < remaining < 10 * UNIT + 0.01  # the loop clock may round up
        assert cancel_timer(ref) is None
        fired = send_after(0, self_pid(), "fired")
        assert await receive(timeout=WAIT) == "fired"
        assert cancel_timer(fired) is None
        assert receive_nowait(default=None) is None

    run(main)


def test_timers_are_cancelled_when_the_node_stops(run: Runner) -> None:
    async def main() -> None:
        send_after(60, self_pid(), "after the end")

    run(main)  # returns at once; the pending timer must not keep anything alive


def test_bad_names_and_destinations_fail_at_the_call(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="registered name must be a str"):
            register(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="send_after destination"):
            send_after(0, 42, "x")  # type: ignore[arg-type]

    run(main)
