"""The interactive supervision demo: a rich Live view driven by keys.

The controller process owns the screen. Its mailbox receives everything: `Started`
and `Down` (the observer's events), `LogEvent` (the runtime's log records), `Key`
(one per character read from stdin by a loop reader) and `_Refresh` (its own
``send_after`` timer, which re-reads the tree with `which_children` and
`process_info` and redraws).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..actors import (
    KILL,
    ActorError,
    Down,
    Pid,
    Ref,
    call,
    cast,
    current_node,
    monitor,
    process_info,
    receive,
    self_pid,
    send,
    send_after,
    spawn,
    start_child,
    which_children,
)
from ..actors import (
    exit as exit_signal,
)
from ._supervision_tree import (
    MAX_RESTARTS,
    MAX_SECONDS,
    STRATEGIES,
    TOP,
    TOP_MAX_RESTARTS,
    TOP_MAX_SECONDS,
    TOP_PATH,
    WORKERS,
    Crash,
    Event,
    Observer,
    Path,
    label,
    top_pid,
    top_spec,
    tree_pids,
)

REFRESH = 0.2
"""Seconds between redraws."""
EVENT_LINES = 16
"""How many events the log panel keeps (older ones scroll away)."""
ROOT_PATH: Path = ("alight.root",)
HELP = (
    "limit: max restarts/period. keys: [b]1-9[/b] crash that worker · "
    "[b]a b c[/b] burst-crash sub-tree a/b/c until its intensity breaks · "
    "[b]A B C[/b] kill supervisor a/b/c · [b]t[/b] kill the top supervisor · [b]q[/b] quit"
)
STYLES = {
    "started": "green",
    "restarted": "bold green",
    "down": "yellow",
    "crash": "bold red",
    "supervisor": "magenta",
    "log": "cyan",
    "you": "bold blue",
}


@dataclass(frozen=True, slots=True)
class Key:
    """A character typed on stdin (``"eof"`` when stdin closes)."""

    char: str


@dataclass(frozen=True, slots=True)
class _Refresh:
    pass


@dataclass(frozen=True, slots=True)
class _Row:
    key: str
    name: str
    limit: str
    pid: Pid | None
    status: str
    restarts: int
    handled: int | None
    mailbox: int | None
    ticks: int | None


def _worker_key(strategy: str, worker: str) -> str:
    return str(STRATEGIES.index(strategy) * len(WORKERS) + WORKERS.index(worker) + 1)


def _subtree_key(strategy: str) -> str:
    return "abc"[STRATEGIES.index(strategy)]


class LiveDemo:
    """The controller of the interactive demo; `run` it inside a process."""

    def __init__(self, console: Console, stdin_fd: int | None) -> None:
        self.console = console
        self.stdin_fd = stdin_fd
        self.events: deque[Event] = deque(maxlen=EVENT_LINES)
        self.observer = Observer(on_event=self.events.append)
        self.rows: list[_Row] = []

    async def run(self) -> int:
        node = current_node()
        me = self_pid()
        await start_child(node.root, top_spec(me))
        # The root supervisor is the last to escalate to: show when it gives up too.
        self.observer.paths[node.root] = ROOT_PATH
        monitor(node.root)
        if self.stdin_fd is not None:
            self._read_keys(self.stdin_fd, me)
        try:
            send(me, _Refresh())
            with Live(self.render(), console=self.console, auto_refresh=False, transient=False) as live:
                while True:
                    message = await receive()
                    if self.observer.handle(message):
                        continue
                    if type(message) is _Refresh:
                        await self.snapshot()
                        live.update(self.render(), refresh=True)
                        send_after(REFRESH, me, _Refresh())
                    elif type(message) is Key and not self.on_key(message.char):
                        await self.snapshot()
                        live.update(self.render(), refresh=True)
                        break
            self.console.line()
            return 0
        finally:
            if self.stdin_fd is not None:
                node.loop.remove_reader(self.stdin_fd)

    def _read_keys(self, fd: int, me: Pid) -> None:
        node = current_node()

        def readable() -> None:
            try:
                data = os.read(fd, 1024)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                node.loop.remove_reader(fd)
                node.send(me, Key("eof"))
                return
            for char in data.decode(errors="replace"):
                node.send(me, Key(char))

        node.loop.add_reader(fd, readable)

    # -- keys ------------------------------------------------------------------------

    def on_key(self, char: str) -> bool:
        """Act on a key; False to quit."""
        if char in ("q", "Q", "eof", "\x1b", "\x04"):
            return False
        latest = self.observer.latest
        if char.isdigit() and char != "0" and int(char) <= len(STRATEGIES) * len(WORKERS):
            index = int(char) - 1
            path: Path = (STRATEGIES[index // len(WORKERS)], WORKERS[index % len(WORKERS)])
            self._crash(path, latest.get(path))
        elif len(char) == 1 and char in "abc":
            strategy = STRATEGIES["abc".index(char)]
            sup = latest.get((strategy,))
            if sup is not None:
                self._say(f"burst-crash {strategy} ({MAX_RESTARTS + 1} crashes, one per restart)")
                spawn(_burst, sup)
        elif len(char) == 1 and char in "ABC":
            path = (STRATEGIES["ABC".index(char)],)
            self._kill(path, latest.get(path))
        elif char == "t":
            self._kill(TOP_PATH, latest.get(TOP_PATH))
        return True

    def _say(self, text: str) -> None:
        self.events.append(Event("you", f"you: {text}"))

    def _crash(self, path: Path, pid: Pid | None) -> None:
        if pid is not None:
            self._say(f"crash {label(path)} {pid!r}")
            cast(pid, Crash())

    def _kill(self, path: Path, pid: Pid | None) -> None:
        if pid is not None:
            self._say(f"kill supervisor {label(path)} {pid!r}")
            exit_signal(pid, KILL)

    # -- the view --------------------------------------------------------------------

    async def snapshot(self) -> None:
        """Re-read the tree from the supervisors themselves and each process's info."""
        pids = await tree_pids(await top_pid(current_node()))
        top_limit = f"{TOP_MAX_RESTARTS}/{TOP_MAX_SECONDS:g}s"
        rows = [await self._row("t", f"{TOP} one_for_one", TOP_PATH, pids.get(TOP_PATH), top_limit)]
        for sup_index, strategy in enumerate(STRATEGIES):
            last_sup = sup_index == len(STRATEGIES) - 1
            key = _subtree_key(strategy)
            name = f"{'└─' if last_sup else '├─'} {strategy}"
            limit = f"{MAX_RESTARTS}/{MAX_SECONDS:g}s"
            rows.append(await self._row(f"{key}/{key.upper()}", name, (strategy,), pids.get((strategy,)), limit))
            for worker_index, worker in enumerate(WORKERS):
                path = (strategy, worker)
                branch = "└─" if worker_index == len(WORKERS) - 1 else "├─"
                name = f"{'   ' if last_sup else '│  '}{branch} {worker}"
                rows.append(await self._row(_worker_key(strategy, worker), name, path, pids.get(path)))
        self.rows = rows

    async def _row(self, key: str, name: str, path: Path, pid: Pid | None, limit: str = "") -> _Row:
        restarts = self.observer.restarts(path)
        info = None if pid is None else process_info(pid)
        if pid is None or info is None:
            return _Row(key, name, limit, pid, "down", restarts, None, None, None)
        ticks = None
        if len(path) == 2:
            try:
                ticks = await call(pid, "count", timeout=0.5)
            except ActorError:
                ticks = None
        return _Row(key, name, limit, pid, info.status, restarts, info.messages_handled, info.mailbox_length, ticks)

    def render(self) -> RenderableType:
        table = Table(title="alight supervision demo", box=box.SIMPLE_HEAD)
        for column in ("key", "process", "limit", "pid", "status", "restarts", "msgs", "mbox", "ticks"):
            justify: JustifyMethod = "right" if column in ("restarts", "msgs", "mbox", "ticks") else "left"
            table.add_column(column, justify=justify, no_wrap=True)
        for row in self.rows:
            status_style = "red" if row.status == "down" else "green"
            table.add_row(
                row.key,
                row.name,
                row.limit,
                repr(row.pid) if row.pid is not None else "-",
                Text(row.status, style=status_style),
                Text(str(row.restarts), style="bold yellow" if row.restarts else ""),
                _number(row.handled),
                _number(row.mailbox),
                _number(row.ticks),
            )
        log = Text(no_wrap=True, overflow="ellipsis")
        for index, event in enumerate(self.events):
            if index:
                log.append("\n")
            log.append(event.text, style=STYLES.get(event.kind, ""))
        panel = Panel(log, title="events (monitors, crash reports, supervisor log)", height=EVENT_LINES + 2)
        return Group(table, panel, Text.from_markup(HELP))


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


async def _burst(sup: Pid) -> None:
    """Crash the workers of ``sup`` one after another, each as soon as the previous
    one was restarted, until the supervisor gives up (or after one crash more than
    its intensity allows).

    After a crashed worker's `Down`, a `which_children` call is queued behind the
    supervisor's own exit signal, so its answer already names the replacement.
    """
    for attempt in range(MAX_RESTARTS + 1):
        try:
            children = await which_children(sup)
        except ActorError:
            return  # the supervisor is gone: the burst did its job
        worker = WORKERS[attempt % len(WORKERS)]
        pid = next((child.pid for child in children if child.id == worker), None)
        if pid is None:
            return
        cast(pid, Crash())
        await receive(_down_of(monitor(pid)), timeout=2.0, default=None)


def _down_of(ref: Ref) -> Callable[[Any], bool]:
    return lambda message: type(message) is Down and message.ref == ref
