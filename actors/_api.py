"""The process API: what code running inside a process calls.

Each function acts on behalf of the current process (found through a context
variable) and raises `NotInProcess` when called from plain asyncio code. The names
and semantics are Erlang's (``spawn_link``, ``monitor``, ``trap_exit``, ...); times
are in seconds, as everywhere in Python.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from ._context import current_process
from ._mailbox import NO_DEFAULT, Match
from ._pid import Pid, Ref
from .errors import ExitProcess, NotInProcess
from .messages import KILL, KILLED, Offloaded, Reason

if TYPE_CHECKING:
    from ._node import Dest, Node
    from ._process import Process

T = TypeVar("T")


def _me() -> Process:
    proc = current_process.get(None)
    if proc is None:
        raise NotInProcess("this must be called from inside an alight process")
    return proc


class Actor:
    """Base for a process written as a class: ``spawn(MyActor, *args)`` builds the
    instance inside the new process with ``MyActor(*args)`` and awaits its `run`."""

    async def run(self) -> Any:
        raise NotImplementedError(f"{type(self).__qualname__} must define async run(self)")

    @property
    def pid(self) -> Pid:
        return self_pid()


async def _run_actor(cls: type[Actor], *args: Any) -> Any:
    return await cls(*args).run()


def _body(fn: Callable[..., Awaitable[Any]] | type[Actor], args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    if isinstance(fn, type):
        if not issubclass(fn, Actor):
            raise TypeError(f"spawn takes an async function or an Actor subclass, not {fn!r}")
        return _run_actor, (fn, *args)
    if not callable(fn):
        raise TypeError(f"spawn takes an async function or an Actor subclass, not {fn!r}")
    return fn, args


def self_pid() -> Pid:
    """The pid of the current process (Erlang's ``self()``)."""
    return _me().pid


def current_node() -> Node:
    """The node the current process runs on."""
    return _me().node


def spawn(fn: Callable[..., Awaitable[Any]] | type[Actor], *args: Any) -> Pid:
    """Start a process running ``await fn(*args)`` (or an `Actor` subclass); returns at once."""
    body, body_args = _body(fn, args)
    proc = _me().node.spawn_process(body, body_args)
    proc.label = fn
    return proc.pid


def spawn_link(fn: Callable[..., Awaitable[Any]] | type[Actor], *args: Any) -> Pid:
    """Like `spawn`, and link the new process to the caller atomically."""
    me = _me()
    body, body_args = _body(fn, args)
    proc = me.node.spawn_process(body, body_args, link=me)
    proc.label = fn
    return proc.pid


def spawn_monitor(fn: Callable[..., Awaitable[Any]] | type[Actor], *args: Any) -> tuple[Pid, Ref]:
    """Like `spawn`, and monitor the new process atomically; returns ``(pid, ref)``."""
    me = _me()
    body, body_args = _body(fn, args)
    proc = me.node.spawn_process(body, body_args)
    proc.label = fn
    return proc.pid, me.node.monitor(me, proc.pid)


def send(dest: Dest, message: Any) -> None:
    """Send ``message`` to a pid or registered name. Never blocks; a dead or unknown
    pid drops the message (Erlang's ``!``); an unregistered name raises `UnknownName`."""
    # The hottest call of the runtime: `_me()` inlined, and a pid spawned by this
    # node carries its process record, so the message goes straight to the mailbox.
    proc = current_process.get(None)
    if proc is None:
        raise NotInProcess("this must be called from inside an alight process")
    if type(dest) is Pid:
        target = dest.local
        if target is not None and target.node is proc.node:
            if target.alive:
                target.put(message)
            return
    proc.node.send(dest, message)


def receive(match: Match = None, timeout: float | None = None, default: Any = NO_DEFAULT) -> Coroutine[Any, Any, Any]:
    """Take the oldest message that matches ``match`` from the current mailbox.

    ``match`` is a type or tuple of types (``isinstance``), a predicate, or None for
    any message; unmatched messages stay queued in arrival order (selective receive).
    With a ``timeout`` in seconds, raise `ReceiveTimeout` when it passes, or return
    ``default`` if one is given; ``timeout=0`` only looks at what is queued.

    Await it: ``message = await receive()``. It returns the mailbox's coroutine
    rather than being a coroutine of its own: one coroutine object and one frame
    fewer on every receive and in every waiting process.
    """
    proc = current_process.get(None)
    if proc is None:
        raise NotInProcess("this must be called from inside an alight process")
    return proc.receive(match, timeout, default)


def receive_nowait(match: Match = None, default: Any = NO_DEFAULT) -> Any:
    """`receive` with ``timeout=0``, without awaiting."""
    return _me().receive_nowait(match, default)


def link(pid: Pid) -> None:
    """Link the current process with ``pid``. A dead ``pid`` raises `NoProc`, or
    delivers ``Exit(pid, "noproc")`` if the caller traps exits."""
    me = _me()
    me.node.link(me, pid)


def unlink(pid: Pid) -> None:
    """Remove the link with ``pid``, if any."""
    me = _me()
    me.node.unlink(me, pid)


def monitor(pid: Pid) -> Ref:
    """Monitor ``pid``: a `Down` with its exit reason arrives when it ends, or at
    once with reason ``"noproc"`` if it is not alive."""
    me = _me()
    return me.node.monitor(me, pid)


def demonitor(ref: Ref, flush: bool = False) -> bool:
    """Stop monitoring; with ``flush``, also drop a `Down` for ``ref`` already queued."""
    me = _me()
    return me.node.demonitor(me, ref, flush)


def exit(pid: Pid, reason: Reason) -> None:  # noqa: A001 - Erlang's name
    """Send ``pid`` an exit signal (Erlang's ``exit(Pid, Reason)``).

    ``"kill"`` cannot be trapped and kills with reason ``"killed"``; ``"normal"`` is
    ignored by a process that does not trap exits (unless it is the caller); any
    other reason kills a non-trapping process and reaches a trapping one as `Exit`.
    A dead or unknown ``pid`` is ignored.

    Sent to the caller itself, the signal takes effect at once rather than at the next
    ``await``: ``exit(self_pid(), reason)`` raises `ExitProcess` (don't catch it) when
    the caller does not trap exits or the reason is ``"kill"``; a trapping caller gets
    ``Exit(self_pid(), reason)`` in its mailbox instead.
    """
    me = _me()
    if pid == me.pid:
        # A signal to oneself takes effect now, not at the next await, as in Erlang.
        if reason == KILL:
            me.node.kill(me, KILLED)
            raise ExitProcess(KILLED)
        if not me.trap_exit:
            raise ExitProcess(reason)
    me.node.exit(me.pid, pid, reason)


def trap_exit(flag: bool = True) -> bool:
    """Turn exit signals into `Exit` messages (or back); returns the previous value."""
    me = _me()
    previous, me.trap_exit = me.trap_exit, flag
    return previous


def register(name: str, pid: Pid | None = None) -> None:
    """Register ``pid`` (default: the caller) under ``name`` on this node."""
    me = _me()
    me.node.register(name, me.pid if pid is None else pid)


def unregister(name: str) -> None:
    """Remove the registered ``name`` (Erlang's ``unregister/1``); raises `UnknownName`
    if no process has it. The process itself lives on."""
    _me().node.unregister(name)


def whereis(name: str) -> Pid | None:
    """The pid registered under ``name``, or None."""
    return _me().node.whereis(name)


def make_ref() -> Ref:
    """A reference unique on this node's incarnation (Erlang's ``make_ref/0``): tag a
    request with it and match the answer on it in `receive`."""
    return _me().node.make_ref()


def send_after(delay: float, dest: Dest, message: Any) -> Ref:
    """Send ``message`` to ``dest`` after ``delay`` seconds (``erlang:send_after``)."""
    return _me().node.send_after(delay, dest, message)


def cancel_timer(ref: Ref) -> float | None:
    """Cancel a `send_after` timer; the seconds it had left, or None if it fired."""
    return _me().node.cancel_timer(ref)


def run_blocking(fn: Callable[..., T], *args: Any) -> Ref:
    """Run blocking ``fn(*args)`` in the node's thread pool; returns a ref at once.

    When it finishes, the caller receives ``Offloaded(ref, value=...)`` or
    ``Offloaded(ref, error=...)``. Use it for blocking I/O or for C code that
    releases the GIL, so that the loop (and every other process) keeps running.
    """
    me = _me()
    return me.node.offload(me.pid, fn, args)


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """`run_blocking` and wait for its `Offloaded` message; return or raise its outcome."""
    ref = run_blocking(fn, *args)
    result: Offloaded = await receive(lambda m: type(m) is Offloaded and m.ref == ref)
    if result.error is not None:
        raise result.error
    value: T = result.value
    return value
