"""The supervision demo's tree, and the observer that watches it.

The tree, under the node's root supervisor::

    demo (one_for_one, max 3 restarts in 10 s)
    ├── one_for_one   (max 3 restarts in 5 s): w1 w2 w3
    ├── one_for_all   (max 3 restarts in 5 s): w1 w2 w3
    └── rest_for_one  (max 3 restarts in 5 s): w1 w2 w3

Every worker is a `Ticker` (a GenServer counting ``send_after`` ticks). Every
process of the tree announces itself to the observer with a `Started` message from
its start (a worker from its ``init``, a supervisor from its child spec's start
function), and the observer monitors it, so restarts are seen as events (`Started`
and `Down`), never guessed from the clock. The runtime's own log records (crash
reports, supervisor errors, watchdog warnings) reach the observer as `LogEvent`
messages through `LogCapture`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..actors import (
    ActorError,
    ChildSpec,
    Down,
    From,
    GenServer,
    Node,
    Pid,
    Reply,
    Stop,
    Supervisor,
    current_node,
    monitor,
    receive,
    self_pid,
    send,
    send_after,
    which_children,
)

Path = tuple[str, ...]
"""Where a process sits in the demo tree: ``("demo",)``, ``("one_for_all",)``,
``("one_for_all", "w2")``."""

TOP = "demo"
TOP_PATH: Path = (TOP,)
STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
WORKERS = ("w1", "w2", "w3")
MAX_RESTARTS = 3
MAX_SECONDS = 5.0
TOP_MAX_RESTARTS = 3
TOP_MAX_SECONDS = 10.0
TICK = 0.25
"""Seconds between a worker's ticks."""


def label(path: Path) -> str:
    """``one_for_all/w2``: a path as the demo prints it."""
    return "/".join(path)


def describe_reason(reason: Any) -> str:
    """An exit reason in one short line: ``shutdown``, ``WorkerCrashError: ...``."""
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}"
    return str(reason)


def restarted_by(strategy: str, worker: str) -> tuple[str, ...]:
    """The workers a supervisor of ``strategy`` restarts when ``worker`` crashes
    (OTP: the child alone; all children; the child and those started after it)."""
    if strategy == "one_for_one":
        return (worker,)
    if strategy == "one_for_all":
        return WORKERS
    return WORKERS[WORKERS.index(worker) :]


# -- messages ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """A process of the tree has started (or restarted) as ``pid``."""

    path: Path
    pid: Pid


@dataclass(frozen=True, slots=True)
class LogEvent:
    """A record of the runtime's loggers, as one line for the event log."""

    logger: str
    level: int
    text: str


@dataclass(frozen=True, slots=True)
class Crash:
    """Cast to a `Ticker`: raise `WorkerCrashError` in ``handle_cast``."""


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


class WorkerCrashError(Exception):
    """The crash a `Ticker` raises when asked to (a real exception, crash-reported)."""


# -- the worker -------------------------------------------------------------------


class Ticker(GenServer):
    """A worker that counts ticks; ``call(pid, "count")`` returns the count.

    ``init`` schedules the first tick and sends `Started` to the observer, which is
    how the observer learns of every (re)start.
    """

    default_shutdown = 1.0

    async def init(self, path: Path, observer: Pid) -> None:
        self.path = path
        self.count = 0
        send_after(TICK, self_pid(), _Tick())
        send(observer, Started(path, self_pid()))
        return None

    async def handle_info(self, message: Any) -> None:
        if isinstance(message, _Tick):
            self.count += 1
            send_after(TICK, self_pid(), _Tick())
        return None

    async def handle_cast(self, request: Any) -> None:
        if isinstance(request, Crash):
            raise WorkerCrashError(f"{label(self.path)} crashed on request")
        return None

    async def handle_call(self, request: Any, from_: From) -> Reply | Stop:
        if request == "count":
            return Reply(self.count)
        return Stop(("bad_request", request), reply=None)


# -- the tree ---------------------------------------------------------------------


def _announced(path: Path, observer: Pid, start: Callable[[], Any]) -> Callable[[], Any]:
    async def start_and_announce() -> Pid:
        pid: Pid = await start()
        send(observer, Started(path, pid))
        return pid

    return start_and_announce


def subtree_spec(strategy: str, observer: Pid) -> ChildSpec:
    """A sub-supervisor of ``strategy`` with three `Ticker` workers.

    Not registered under a name: when ``demo`` is killed, its sub-supervisors (which
    trap exits) take a moment to stop their workers, and a restarted ``demo`` would
    meet their names still taken (``already_started``, as in OTP) and have to retry.
    """
    workers = [Ticker.child_spec((strategy, worker), observer, id=worker) for worker in WORKERS]

    async def start() -> Pid:
        return await Supervisor.start_link(
            workers,
            strategy=strategy,  # type: ignore[arg-type]
            max_restarts=MAX_RESTARTS,
            max_seconds=MAX_SECONDS,
        )

    return ChildSpec(id=strategy, start=_announced((strategy,), observer, start), type="supervisor")


def top_spec(observer: Pid) -> ChildSpec:
    """The demo's top supervisor (``one_for_one``) over the three sub-trees."""
    subtrees = [subtree_spec(strategy, observer) for strategy in STRATEGIES]

    async def start() -> Pid:
        return await Supervisor.start_link(
            subtrees, strategy="one_for_one", max_restarts=TOP_MAX_RESTARTS, max_seconds=TOP_MAX_SECONDS, name=TOP
        )

    return ChildSpec(id=TOP, start=_announced(TOP_PATH, observer, start), type="supervisor")


async def tree_pids(top: Pid | None) -> dict[Path, Pid | None]:
    """Every process of the tree by path, from `which_children` (None: not running).

    A supervisor that dies while being asked counts as not running.
    """
    pids: dict[Path, Pid | None] = {TOP_PATH: top}
    if top is None:
        return pids
    try:
        subtrees = await which_children(top)
    except ActorError:
        return {TOP_PATH: None}
    for sub in subtrees:
        sub_path = (str(sub.id),)
        pids[sub_path] = sub.pid
        if sub.pid is None:
            continue
        try:
            workers = await which_children(sub.pid)
        except ActorError:
            pids[sub_path] = None
            continue
        for worker in workers:
            pids[(*sub_path, str(worker.id))] = worker.pid
    return pids


async def top_pid(node: Node) -> Pid | None:
    """The demo's top supervisor, as its parent (the node's root) knows it."""
    try:
        children = await which_children(node.root)
    except ActorError:
        return None
    return next((child.pid for child in children if child.id == TOP), None)


# -- watching ---------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """One line of the event log."""

    kind: str
    """``started``, ``restarted``, ``down``, ``crash``, ``supervisor`` or ``log``."""
    text: str


@dataclass
class Observer:
    """What the controller process knows from the events it received.

    It must be driven from the process whose pid it was given (`handle` monitors
    the processes it hears of on behalf of that process).
    """

    on_event: Callable[[Event], None]
    latest: dict[Path, Pid] = field(default_factory=dict)
    starts: Counter[Path] = field(default_factory=Counter)
    paths: dict[Pid, Path] = field(default_factory=dict)
    downs: list[Down] = field(default_factory=list)
    logs: list[LogEvent] = field(default_factory=list)

    def restarts(self, path: Path) -> int:
        """How many times ``path`` has been restarted since the demo began."""
        return max(0, self.starts[path] - 1)

    def path_of(self, pid: Pid) -> Path | None:
        return self.paths.get(pid)

    def handle(self, message: Any) -> bool:
        """Take one message; False if it is not an observer message."""
        if type(message) is Started:
            self._started(message)
        elif type(message) is Down:
            self._down(message)
        elif type(message) is LogEvent:
            self.logs.append(message)
            kind = {"alight.actors.crash": "crash", "alight.actors.supervisor": "supervisor"}.get(message.logger, "log")
            self.on_event(Event(kind, message.text))
        else:
            return False
        return True

    def _started(self, message: Started) -> None:
        path, pid = message.path, message.pid
        self.starts[path] += 1
        self.latest[path] = pid
        self.paths[pid] = path
        monitor(pid)
        if self.starts[path] == 1:
            self.on_event(Event("started", f"started {label(path)} {pid!r}"))
        else:
            self.on_event(Event("restarted", f"restarted {label(path)} as {pid!r} (restart #{self.restarts(path)})"))

    def _down(self, message: Down) -> None:
        path = self.paths.get(message.pid)
        if path is None:
            return
        self.downs.append(message)
        self.on_event(Event("down", f"down {label(path)} {message.pid!r}: {describe_reason(message.reason)}"))

    async def wait_until(self, done: Callable[[], bool], limit: float) -> bool:
        """Handle messages until ``done()`` holds; False after ``limit`` seconds.

        Messages that are not the observer's stay queued for later (selective
        receive), so keys and refresh ticks are not lost while a step waits.
        """
        loop = current_node().loop
        deadline = loop.time() + limit
        while not done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            message = await receive((Started, Down, LogEvent), timeout=remaining, default=None)
            if message is None:
                return done()
            self.handle(message)
        return True


class LogCapture(logging.Handler):
    """Sends the runtime's log records to the observer process as `LogEvent`s.

    Attached to the ``alight.actors`` logger (crash reports come from
    ``alight.actors.crash``, supervisor errors from ``alight.actors.supervisor``)
    with propagation off while the demo runs, so they do not scribble over the
    screen. The watchdog logs from its own thread: such records are handed to the
    loop thread-safely.
    """

    def __init__(self, node: Node, observer: Pid) -> None:
        super().__init__(logging.INFO)
        self.node = node
        self.observer = observer
        self.loop_thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = LogEvent(record.name, record.levelno, _one_line(record))
            if threading.get_ident() == self.loop_thread:
                self.node.send(self.observer, event)
            else:
                self.node.loop.call_soon_threadsafe(self.node.send, self.observer, event)
        except Exception:  # noqa: BLE001 - logging's boundary: handleError is its defined outcome
            self.handleError(record)


def _one_line(record: logging.LogRecord) -> str:
    fields = getattr(record, "alight", None)
    if record.name == "alight.actors.crash" and isinstance(fields, dict):
        entry = str(fields.get("entry")).rsplit(".", 1)[-1]
        return f"crash report: {fields.get('pid')} {entry}.{fields.get('callback') or '?'}: {fields.get('reason')}"
    return record.getMessage().splitlines()[0]
