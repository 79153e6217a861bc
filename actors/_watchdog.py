"""The watchdog: finds processes that hold the event loop too long.

asyncio cannot preempt. A process that computes for a second, or calls a blocking
function, stalls every other process of its node; the BEAM would have preempted it.
The watchdog makes such stalls visible: a callback on the loop stamps the time every
``threshold / 2`` seconds, and a thread checks the stamp. When the loop has not
stamped for longer than ``threshold``, the thread looks up the task the loop is
running, maps it to its process and takes the loop thread's stack, then logs a
warning and keeps a `BlockReport`. Processes registered with `subscribe` get the
report as a message once the loop runs again.

Reading the running task and the loop thread's frames from another thread uses only
public APIs (``asyncio.current_task(loop)``, ``sys._current_frames`` is the one
documented underscore function for this purpose).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._crash import describe_entry
from ._pid import Pid

if TYPE_CHECKING:
    from ._node import Node

log = logging.getLogger("alight.actors.watchdog")

MAX_REPORTS = 100
"""How many reports a watchdog keeps (oldest dropped; `Watchdog.reported` counts all)."""


@dataclass(slots=True)
class BlockReport:
    """A process held the loop longer than the threshold.

    ``blocked_for`` is how long it had held the loop when detected; ``total`` is how
    long the stall lasted in the end (None while it goes on). ``pid`` is None when
    the loop was running code outside any process.
    """

    pid: Pid | None
    name: str | None
    entry: str
    blocked_for: float
    stack: str
    total: float | None = None
    at: float = field(default_factory=time.time)


class Watchdog:
    """Per-node stall detector; started and stopped by its `Node`."""

    def __init__(self, node: Node, threshold: float | None) -> None:
        if threshold is not None and threshold <= 0:
            raise ValueError(f"watchdog threshold must be positive seconds or None, not {threshold!r}")
        self.node = node
        self.threshold = threshold
        self.reports: deque[BlockReport] = deque(maxlen=MAX_REPORTS)
        self.reported = 0
        self._subscribers: set[Pid] = set()
        self._stamp = 0.0
        self._open: BlockReport | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    def subscribe(self, pid: Pid) -> None:
        """Send every future `BlockReport` to ``pid`` as a message."""
        self._subscribers.add(pid)

    def unsubscribe(self, pid: Pid) -> None:
        self._subscribers.discard(pid)

    def start(self) -> None:
        if self.threshold is None:
            return
        self._loop = self.node.loop
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        self._beat()
        self._thread = threading.Thread(target=self._watch, name=f"alight-watchdog-{self.node.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _beat(self) -> None:
        now = time.monotonic()
        report = self._open
        if report is not None:
            self._open = None
            report.total = now - self._stamp
            self._notify(report)
        self._stamp = now
        assert self._loop is not None
        assert self.threshold is not None
        self._handle = self._loop.call_later(self.threshold / 2, self._beat)

    def _notify(self, report: BlockReport) -> None:
        node = self.node
        for pid in list(self._subscribers):
            if node.lookup(pid) is None:
                self._subscribers.discard(pid)  # a dead subscriber unsubscribes itself
            else:
                node.send(pid, report)

    def _watch(self) -> None:
        assert self.threshold is not None
        while not self._stop.wait(self.threshold / 4):
            stamp = self._stamp
            lag = time.monotonic() - stamp
            if lag > self.threshold and self._open is None:
                report = self._inspect(lag)
                # If the loop stamped meanwhile, the stall ended while we looked and the
                # task and stack may belong to whatever ran next: not worth reporting.
                if self._stamp == stamp:
                    self._keep(report)
                    self._open = report

    def _inspect(self, lag: float) -> BlockReport:
        assert self._loop is not None
        task = asyncio.current_task(self._loop)
        proc = None
        if task is not None:
            for candidate in list(self.node.processes()):
                if candidate.task is task:
                    proc = candidate
                    break
        frame = sys._current_frames().get(self._loop_thread)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no stack)"
        return BlockReport(
            pid=None if proc is None else proc.pid,
            name=None if proc is None else proc.name,
            entry=describe_entry(None if proc is None else proc.label),
            blocked_for=lag,
            stack=stack,
        )

    def _keep(self, report: BlockReport) -> None:
        self.reports.append(report)
        self.reported += 1
        who = (
            "code outside any process"
            if report.pid is None
            else f"process {report.pid!r} ({report.name or report.entry})"
        )
        log.warning("%s has held the event loop for %.0f ms; stack:\n%s", who, report.blocked_for * 1000, report.stack)
