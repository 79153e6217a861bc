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


_Small = tuple[Any, ...] | dict[Ref, Pid] | None
"""A small map of monitors: most processes hold or carry a few monitors or none, and a
dict costs 224 bytes where a flat tuple ``(ref, pid, ref, pid, ...)`` of up to
`SMALL_PAIRS` pairs costs 56-88 (per connection, thousands of times)."""

SMALL_PAIRS = 4
"""Monitors kept in a flat tuple; a fifth turns it into a dict."""


def _put(small: _Small, ref: Ref, pid: Pid) -> _Small:
    if small is None:
        return (ref, pid)
    if type(small) is tuple:
        if len(small) < 2 * SMALL_PAIRS:
            return (*small, ref, pid)
        grown = dict(zip(small[::2], small[1::2], strict=True))
        grown[ref] = pid
        return grown
    small[ref] = pid  # type: ignore[index]
    return small


def _pop(small: _Small, ref: Ref) -> tuple[_Small, Pid | None]:
    if small is None:
        return None, None
    if type(small) is tuple:
        for i in range(0, len(small), 2):
            if small[i] == ref:
                rest = small[:i] + small[i + 2 :]
                return (rest or None), small[i + 1]
        return small, None
    return small, small.pop(ref, None)  # type: ignore[union-attr]


def _has(small: _Small, ref: Ref) -> bool:
    if small is None:
        return False
    if type(small) is tuple:
        return any(small[i] == ref for i in range(0, len(small), 2))
    return ref in small


def _items(small: _Small) -> list[tuple[Ref, Pid]]:
    if small is None:
        return []
    if type(small) is tuple:
        return list(zip(small[::2], small[1::2], strict=True))
    return list(small.items())  # type: ignore[union-attr]


class Process(Mailbox):
    """The runtime's record of one process. Users hold its `Pid`, never this object."""

    __slots__ = (
        "_links",
        "_monitored_by",
        "_monitors",
        "alive",
        "callback",
        "final_reason",
        "label",
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
        # One link is the common case (a supervisor, a listener): a lone Pid, and a
        # set (216 bytes even when small) only for two or more.
        self._links: Pid | set[Pid] | None = None
        # Monitors this process holds (ref -> monitored pid) and monitors held on it
        # (ref -> watcher): None, one (ref, pid) pair, or a dict for two or more.
        self._monitors: _Small = None
        self._monitored_by: _Small = None
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

    @property
    def links(self) -> set[Pid]:
        """The linked pids (a copy)."""
        links = self._links
        if links is None:
            return set()
        return {links} if type(links) is Pid else set(links)  # type: ignore[arg-type]

    def add_link(self, pid: Pid) -> None:
        links = self._links
        if links is None:
            self._links = pid
        elif type(links) is Pid:
            if links != pid:
                self._links = {links, pid}
        else:
            links.add(pid)  # type: ignore[union-attr]

    def remove_link(self, pid: Pid) -> None:
        links = self._links
        if links is None:
            return
        if type(links) is Pid:
            if links == pid:
                self._links = None
        else:
            links.discard(pid)  # type: ignore[union-attr]

    def take_links(self) -> tuple[Pid, ...] | set[Pid]:
        """Remove and return every link (when the process ends)."""
        links, self._links = self._links, None
        if links is None:
            return ()
        return (links,) if type(links) is Pid else links  # type: ignore[return-value]

    def add_monitor(self, ref: Ref, target: Pid) -> None:
        self._monitors = _put(self._monitors, ref, target)

    def pop_monitor(self, ref: Ref) -> Pid | None:
        """Forget the monitor ``ref`` this process holds; its target, or None."""
        self._monitors, target = _pop(self._monitors, ref)
        return target

    def has_monitor(self, ref: Ref) -> bool:
        return _has(self._monitors, ref)

    def take_monitors(self) -> list[tuple[Ref, Pid]]:
        monitors, self._monitors = self._monitors, None
        return _items(monitors)

    def add_monitored_by(self, ref: Ref, watcher: Pid) -> None:
        self._monitored_by = _put(self._monitored_by, ref, watcher)

    def pop_monitored_by(self, ref: Ref) -> Pid | None:
        self._monitored_by, watcher = _pop(self._monitored_by, ref)
        return watcher

    def take_monitored_by(self) -> list[tuple[Ref, Pid]]:
        watchers, self._monitored_by = self._monitored_by, None
        return _items(watchers)

    @property
    def monitors(self) -> dict[Ref, Pid]:
        """Monitors this process holds: ref -> monitored pid (a copy)."""
        return dict(_items(self._monitors))

    @property
    def monitored_by(self) -> dict[Ref, Pid]:
        """Monitors held on this process: ref -> watching pid (a copy)."""
        return dict(_items(self._monitored_by))

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
        # The body's arguments live in its own frame; this frame lets go of them, so a
        # long-lived process holds only what its body keeps (not, e.g., the request
        # that started it).
        running = body(*args)
        del args
        result = await running
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
