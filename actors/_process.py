"""A process: a mailbox with an identity, links, monitors and an asyncio task.

The task runs `run_process`, which sets the current-process context variable, runs
the body and turns however it ended into an exit reason that the node delivers to
links and monitors. Nothing a process does can escape this boundary: a crash is a
reason, never a lost exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._context import current_process
from ._mailbox import Mailbox
from ._pid import Pid, Ref
from .errors import ExitProcess
from .messages import KILLED, NORMAL, Reason, is_normal

if TYPE_CHECKING:
    from ._node import Node


class Process(Mailbox):
    """The runtime's record of one process. Users hold its `Pid`, never this object."""

    __slots__ = (
        "alive",
        "callback",
        "final_reason",
        "label",
        "links",
        "monitored_by",
        "monitors",
        "name",
        "node",
        "pending_exit",
        "pid",
        "task",
        "trap_exit",
    )

    def __init__(self, pid: Pid, node: Node) -> None:
        super().__init__()
        self.pid = pid
        self.node = node
        self.task: asyncio.Task[Any] | None = None
        self.name: str | None = None
        self.trap_exit = False
        self.links: set[Pid] | None = None
        self.monitors: dict[Ref, Pid] | None = None
        """Monitors this process holds: ref -> monitored pid."""
        self.monitored_by: dict[Ref, Pid] | None = None
        """Monitors held on this process: ref -> watching pid."""
        self.pending_exit: Reason = None
        """The reason of an exit signal delivered by cancelling the task."""
        self.final_reason: Reason = None
        """The exit reason, once the process has ended."""
        self.alive = True
        self.callback: str | None = None
        """The callback being run, set by behaviours (``"handle_call"``, ...)."""
        self.label: Any = None
        """What the process runs (its function or class), for introspection."""

    def __repr__(self) -> str:
        return f"Process({self.pid!r}, name={self.name!r})"

    def add_link(self, pid: Pid) -> None:
        links = self.links
        if links is None:
            self.links = {pid}
        else:
            links.add(pid)

    def remove_link(self, pid: Pid) -> None:
        if self.links is not None:
            self.links.discard(pid)

    def add_monitor(self, ref: Ref, target: Pid) -> None:
        if self.monitors is None:
            self.monitors = {}
        self.monitors[ref] = target

    def add_monitored_by(self, ref: Ref, watcher: Pid) -> None:
        if self.monitored_by is None:
            self.monitored_by = {}
        self.monitored_by[ref] = watcher

    @property
    def status(self) -> str:
        """``"running"`` (holds the loop now), ``"waiting"`` (in receive),
        ``"runnable"`` (scheduled), or ``"exiting"`` (got an exit signal and is
        running its cleanup, or has ended)."""
        if not self.alive or self.pending_exit is not None:
            return "exiting"
        if self._waiter is not None:
            return "waiting"
        task = self.task
        if task is not None and task is asyncio.current_task():
            return "running"
        return "runnable"


async def run_process(proc: Process, body: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> Any:
    """The whole life of a process's task; returns the body's value or None."""
    current_process.set(proc)
    reason: Reason = NORMAL
    crashed = False
    result: Any = None
    try:
        result = await body(*args)
    except asyncio.CancelledError:
        # An exit signal arrives as a cancellation (the only way to interrupt a
        # coroutine); the reason was stored before cancelling.
        reason = proc.pending_exit if proc.pending_exit is not None else KILLED
    except ExitProcess as exit_:
        reason = exit_.reason
        crashed = not is_normal(reason)
    except Exception as error:  # noqa: BLE001 - the process boundary: a crash becomes its exit reason
        reason = error
        crashed = True
    except BaseException as error:
        # KeyboardInterrupt, SystemExit: the process dies with it, then it goes on
        # to stop the loop, as asyncio does.
        if proc.alive:
            proc.node.process_exited(proc, error, True)
        raise
    if proc.alive:
        proc.node.process_exited(proc, reason, crashed)
    return result
