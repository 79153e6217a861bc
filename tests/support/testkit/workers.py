"""Children for the supervisor tests: each reports its life to the test process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from alight.actors import (
    ChildSpec,
    Down,
    From,
    GenServer,
    NoReply,
    Pid,
    Reply,
    Stop,
    monitor,
    receive,
    self_pid,
    send,
    spawn_link,
    trap_exit,
)


class Worker(GenServer):
    """Sends ``("started", tag, pid)`` from init and ``("stopped", tag, reason)``
    from terminate; ``cast(pid, ("exit", reason))`` makes it stop with ``reason``."""

    async def init(self, owner: Pid, tag: str, mode: str = "ok") -> Stop | None:
        self.owner = owner
        self.tag = tag
        if mode == "fail":
            send(owner, ("failed", tag))
            return Stop(("init_failed", tag))
        send(owner, ("started", tag, self.pid))
        return None

    async def handle_call(self, request: Any, from_: From) -> Reply | NoReply | Stop:
        return Reply(request)

    async def handle_cast(self, request: Any) -> NoReply | Stop | None:
        _, reason = request
        return Stop(reason)

    async def terminate(self, reason: Any) -> None:
        send(self.owner, ("stopped", self.tag, reason))


def worker(owner: Pid, tag: str, **fields: Any) -> ChildSpec:
    return Worker.child_spec(owner, tag, id=tag, **fields)


def flaky(owner: Pid, tag: str, plan: list[str], **fields: Any) -> ChildSpec:
    """A worker whose successive starts follow ``plan`` ("ok" or "fail"), then "ok"."""

    async def start() -> Pid:
        mode = plan.pop(0) if plan else "ok"
        return await Worker.start_link(owner, tag, mode)

    return ChildSpec(id=tag, start=start, **fields)


async def stubborn(owner: Pid, tag: str) -> None:
    """Traps exits and ignores every exit signal, reporting each one."""
    trap_exit(True)
    send(owner, ("started", tag, self_pid()))
    while True:
        message = await receive()
        send(owner, ("ignored", tag, message))


async def slow_to_stop(owner: Pid, tag: str) -> None:
    """Traps exits; on an exit signal reports it and exits only when told "go"."""
    trap_exit(True)
    send(owner, ("started", tag, self_pid()))
    signal = await receive()
    send(owner, ("got", tag, signal.reason))
    await receive(lambda m: m == "go")


def spawned(fn: Callable[..., Awaitable[None]], owner: Pid, tag: str, **fields: Any) -> ChildSpec:
    return ChildSpec(id=tag, start=lambda: spawn_link(fn, owner, tag), **fields)


async def started(tag: str) -> Pid:
    """Wait for the child ``tag`` to report that it started; its pid."""
    message = await receive(lambda m: isinstance(m, tuple) and m[:2] == ("started", tag))
    pid: Pid = message[2]
    return pid


async def stopped(tag: str) -> Any:
    """Wait for the child ``tag`` to report that it stopped; the reason."""
    message = await receive(lambda m: isinstance(m, tuple) and m[:2] == ("stopped", tag))
    return message[2]


async def down(pid: Pid) -> Any:
    """Wait until ``pid`` has exited; its exit reason."""
    ref = monitor(pid)
    message: Down = await receive(lambda m: type(m) is Down and m.ref == ref)
    return message.reason


def watch(pid: Pid) -> Coroutine[Any, Any, Any]:
    """Monitor ``pid`` now; the returned coroutine waits for its exit reason. Use it
    when ``pid`` may exit before the test gets round to waiting."""
    ref = monitor(pid)

    async def wait() -> Any:
        message: Down = await receive(lambda m: type(m) is Down and m.ref == ref)
        return message.reason

    return wait()


def lifecycle(message: Any) -> bool:
    return isinstance(message, tuple) and message[0] in ("started", "stopped")
