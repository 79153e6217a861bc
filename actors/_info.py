"""Introspection: what `process_info` and `processes` report (Erlang's
``process_info/1`` and ``processes/0``), for tools such as the dashboard."""

from __future__ import annotations

from dataclasses import dataclass

from ._api import _me
from ._crash import describe_entry
from ._pid import Pid, Ref
from ._process import Process


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A snapshot of one process.

    ``status`` is ``"running"``, ``"waiting"`` (blocked in receive), ``"runnable"``
    or ``"exiting"``; ``messages_handled`` counts messages taken by `receive`;
    ``callback`` is the behaviour callback being run (``"handle_call"``, ...).
    ``links`` are in no particular order, as in Erlang (a supervisor of many
    thousand children is asked every second by the dashboard: no sort).
    """

    pid: Pid
    name: str | None
    entry: str
    status: str
    mailbox_length: int
    messages_handled: int
    links: tuple[Pid, ...]
    monitors: tuple[Ref, ...]
    monitored_by: tuple[Pid, ...]
    trap_exit: bool
    callback: str | None


def info_of(proc: Process) -> ProcessInfo:
    return ProcessInfo(
        pid=proc.pid,
        name=proc.name,
        entry=describe_entry(proc.label),
        status=proc.status,
        mailbox_length=len(proc),
        messages_handled=proc.received,
        links=tuple(proc.links),
        monitors=tuple(proc.monitors),
        monitored_by=tuple(proc.monitored_by.values()),
        trap_exit=proc.trap_exit,
        callback=proc.callback,
    )


def processes() -> list[Pid]:
    """Every live process of the current node, oldest first."""
    return _me().node.pids()


def process_info(pid: Pid) -> ProcessInfo | None:
    """A snapshot of ``pid``, or None if it is not a live local process."""
    proc = _me().node.lookup(pid)
    return None if proc is None else info_of(proc)
