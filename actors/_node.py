"""The node: one event loop and everything that lives on it.

A `Node` owns its process table, its name registry, its timers, its root supervisor,
its watchdog and its telemetry handlers. There is no module-level state: two nodes in
one interpreter (as in tests) share nothing. Code inside a process finds its node
through the current process; code outside any process uses the `Node` methods directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..telemetry import Telemetry
from . import _crash
from ._crash import describe_entry
from ._pid import Pid, Ref
from ._process import Process, run_process
from ._running import gc_tuned, loop_factory, run_main, serve_until_signal
from ._watchdog import Watchdog
from .errors import ActorError, ExitProcess, NameTaken, NoProc, UnknownName
from .messages import KILL, KILLED, NOCONNECTION, NOPROC, NORMAL, SHUTDOWN, Down, Exit, Offloaded, Reason
from .supervisor import Supervisor

if TYPE_CHECKING:
    from ._child import ChildSpec

T = TypeVar("T")
Dest = Pid | str | tuple[str, str]
"""Where `send` can deliver: a pid, a name registered on this node, or ``(name, node)``
for a name registered on another node (Erlang's ``{Name, Node} ! Msg``; needs a `Remote`)."""

log = logging.getLogger("alight.actors")

GC_THRESHOLD = (50_000, 50, 100)
"""The garbage collector's thresholds while `Node.run` or `Node.serve` runs (see
``Node(gc_threshold=...)``; None leaves the interpreter's own)."""

_STARTED = (inspect.CORO_RUNNING, inspect.CORO_SUSPENDED)


class Remote(Protocol):
    """What the node needs from distribution (the cluster package implements it).

    Without one, messages to other nodes' pids are dropped (as Erlang drops messages
    to an unreachable node) and links and monitors to them fire ``noconnection``.

    The node calls these only for pids of *other* nodes (``pid.node != node.name``);
    local operations never reach the remote. `link` and `monitor` return False when
    the other node is not connected (or ``pid`` is of an old incarnation of it): the
    node then fires ``noconnection``/``noproc`` itself, as without a remote.
    """

    def send(self, dest: Pid, message: Any) -> None: ...

    def send_name(self, name: str, node: str, message: Any) -> None: ...

    def link(self, local: Pid, remote: Pid) -> bool: ...

    def unlink(self, local: Pid, remote: Pid) -> None: ...

    def monitor(self, watcher: Pid, target: Pid, ref: Ref) -> bool: ...

    def demonitor(self, watcher: Pid, target: Pid, ref: Ref) -> None: ...

    def exit(self, sender: Pid | None, target: Pid, reason: Reason) -> None: ...

    def link_exited(self, sender: Pid, target: Pid, reason: Reason) -> None: ...

    def down(self, target: Pid, watcher: Pid, ref: Ref, reason: Reason) -> None: ...


def _default_creation() -> int:
    # Microseconds since the epoch: a restarted node gets a new creation, so its pids
    # and refs never equal those of its previous life (Phoenix.Tracker does the same).
    return time.time_ns() // 1000


class Node:
    """A BEAM-like node on one asyncio event loop.

    ``Node(name).run(main, *args)`` creates the loop (uvloop unless
    ``use_uvloop=False``), starts the node, runs ``main`` as the first process and
    returns its value once it ends, then stops the node: the root supervisor's
    children stop in reverse start order within their shutdown timeouts, and every
    remaining process is killed. If ``main`` crashes, `run` raises its exception.

    ``await node.start()`` / ``await node.stop()`` attach the node to a loop that is
    already running (under uvicorn, say).

    ``watchdog_threshold`` (seconds, default 0.1; ``None`` disables it) is how long a
    process may hold the loop before the watchdog reports it. ``gc_threshold`` is
    applied to the garbage collector while `run` or `serve` runs (`GC_THRESHOLD`).
    """

    def __init__(
        self,
        name: str = "nonode@nohost",
        *,
        creation: int | None = None,
        use_uvloop: bool = True,
        watchdog_threshold: float | None = 0.1,
        max_blocking_threads: int | None = None,
        gc_threshold: tuple[int, int, int] | None = GC_THRESHOLD,
    ) -> None:
        self.name = name
        self.creation = _default_creation() if creation is None else creation
        self.use_uvloop = use_uvloop
        self.remote: Remote | None = None
        self._procs: dict[int, Process] = {}
        self._names: dict[str, Process] = {}
        self._timers: dict[Ref, asyncio.TimerHandle] = {}
        self._serial = 0
        self._ref_serial = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._root: Pid | None = None
        self._executor: Executor | None = None
        self._offloaded: set[asyncio.Future[Any]] = set()
        self._max_blocking_threads = max_blocking_threads
        self.gc_threshold = gc_threshold
        self._stopping: asyncio.Event | None = None
        self.watchdog = Watchdog(self, watchdog_threshold)
        self.crashes = 0
        """How many processes have crashed on this node (crash reports logged)."""
        self.telemetry = Telemetry()
        """The node's telemetry handlers: attach to the events listed in `alight.telemetry`."""

    def __repr__(self) -> str:
        return f"Node({self.name!r}, processes={len(self._procs)})"

    # -- lifecycle ---------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The node's event loop; raises `ActorError` before `start`."""
        if self._loop is None:
            raise ActorError(f"node {self.name} is not running")
        return self._loop

    @property
    def running(self) -> bool:
        return self._loop is not None

    @property
    def root(self) -> Pid:
        """The pid of the root supervisor (``one_for_one``), which `stop` shuts down."""
        if self._root is None:
            raise ActorError(f"node {self.name} is not running")
        return self._root

    def run(self, main: Callable[..., Awaitable[T]], *args: Any, debug: bool | None = None) -> T:
        """Run a fresh event loop with this node until ``main(*args)`` returns."""
        with gc_tuned(self.gc_threshold), asyncio.Runner(loop_factory=loop_factory(self.use_uvloop), debug=debug) as r:
            return r.run(run_main(self, main, args))

    def serve(self, children: Iterable[ChildSpec] = (), *, debug: bool | None = None) -> None:
        """Start ``children`` under the root supervisor and run until SIGTERM or SIGINT.

        On either signal the tree stops in reverse start order within each child's
        shutdown timeout, then `serve` returns.
        """
        with gc_tuned(self.gc_threshold), asyncio.Runner(loop_factory=loop_factory(self.use_uvloop), debug=debug) as r:
            r.run(serve_until_signal(self, list(children)))

    @property
    def stopping_event(self) -> asyncio.Event:
        """Set by SIGTERM/SIGINT under `serve`, or by `request_stop`."""
        if self._stopping is None:
            raise ActorError(f"node {self.name} is not running")
        return self._stopping

    def request_stop(self) -> None:
        """Ask a `serve` call to stop the node, as SIGTERM does."""
        if self._stopping is not None:
            self._stopping.set()

    async def start(self) -> None:
        """Attach the node to the running loop and start its root supervisor."""
        if self._loop is not None:
            raise ActorError(f"node {self.name} is already running")
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.watchdog.start()
        self._root = await self.execute(Supervisor.start, [], name="alight.root")

    async def stop(self) -> None:
        """Stop the root supervisor's tree in reverse order, then kill what is left."""
        if self._loop is None:
            return
        if self._root is not None and self._root.serial in self._procs:
            with contextlib.suppress(ActorError):
                await self.execute(Supervisor.stop, self._root, SHUTDOWN, None)
        # A few rounds: a killed process's cleanup may still spawn (a bounded number
        # of times, so that a process that respawns forever cannot hold `stop`).
        for _ in range(3):
            tasks = []
            for proc in list(self._procs.values()):
                self.kill(proc, KILLED)
                if proc.task is not None and not proc.task.done():
                    tasks.append(proc.task)
            if not tasks:
                break
            await asyncio.wait(tasks, timeout=5.0)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.watchdog.stop()
        for future in self._offloaded:
            # Cancelled so that a thread finishing after the loop closed does not
            # try to call back into it.
            future.cancel()
        self._offloaded.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._root = None
        self._loop = None

    async def execute(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in a new temporary process and return its value or raise its error.

        If the process exits without returning (it was killed, or raised
        `ExitProcess`), `ActorError` says with which reason.

        This is how code outside any process (a test, an ASGI handler) uses APIs that
        need a current process, such as `GenServer.call`.
        """
        outcome: list[tuple[bool, Any]] = []

        async def body() -> None:
            # An error goes to the caller, who owns it: no crash report here. An
            # `ExitProcess` is not an error but the process's exit, handled as such.
            try:
                outcome.append((True, await fn(*args, **kwargs)))
            except ExitProcess:
                raise
            except Exception as error:  # noqa: BLE001 - handed to the caller below
                outcome.append((False, error))

        proc = self.spawn_process(body, ())
        proc.label = fn
        assert proc.task is not None
        try:
            await asyncio.wait([proc.task])
        except asyncio.CancelledError:
            # The caller went away: its process must not outlive it unowned.
            self.terminate(proc, SHUTDOWN)
            raise
        if not outcome:
            raise ActorError(f"{describe_entry(fn)} exited with reason {proc.final_reason!r}")
        ok, value = outcome[0]
        if not ok:
            raise value
        result: T = value
        return result

    # -- processes ----------------------------------------------------------------

    def spawn_process(
        self,
        body: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        *,
        link: Process | None = None,
    ) -> Process:
        """Create a process running ``body(*args)``, linked to ``link`` if given."""
        loop = self.loop
        self._serial += 1
        serial = self._serial
        pid = Pid(self.name, self.creation, serial)
        proc = Process(pid, self)
        pid.local = proc
        proc.label = body
        if link is not None:
            link.add_link(proc.pid)
            proc.add_link(link.pid)
        self._procs[serial] = proc
        proc.task = loop.create_task(run_process(proc, body, args))
        return proc

    def lookup(self, pid: Pid) -> Process | None:
        """The live local process of ``pid``, or None."""
        if pid.node != self.name or pid.creation != self.creation:
            return None
        return self._procs.get(pid.serial)

    def make_ref(self) -> Ref:
        """A new `Ref`, unique on this node's incarnation."""
        self._ref_serial += 1
        return Ref(self.name, self.creation, self._ref_serial)

    def pids(self) -> list[Pid]:
        """The pids of every live process on this node, oldest first."""
        return [proc.pid for proc in self._procs.values()]

    def processes(self) -> list[Process]:
        """The live processes (runtime records; for introspection tools)."""
        return list(self._procs.values())

    # -- messages -----------------------------------------------------------------

    def send(self, dest: Dest, message: Any) -> None:
        """Deliver ``message``; never blocks. A dead or unknown pid drops it silently,
        as Erlang's ``!`` does; an unregistered name raises `UnknownName`."""
        if type(dest) is Pid:
            proc = dest.local
            if proc is not None and proc.node is self:
                # The pid was made by this node: its process record is at hand.
                if proc.alive:
                    proc.put(message)
                return
            if dest.node == self.name:
                if dest.creation == self.creation:
                    proc = self._procs.get(dest.serial)
                    if proc is not None:
                        proc.put(message)
                return
            if self.remote is not None:
                self.remote.send(dest, message)
            return
        if isinstance(dest, str):
            proc = self._names.get(dest)
            if proc is None:
                raise UnknownName(f"no process registered as {dest!r}")
            proc.put(message)
            return
        if type(dest) is tuple and len(dest) == 2:
            name, node = dest
            if node == self.name:
                self.send(name, message)
            elif self.remote is not None:
                self.remote.send_name(name, node, message)
            return  # no connection: dropped, as Erlang drops it
        raise TypeError(f"send destination must be a Pid or a registered name, not {dest!r}")

    # -- names --------------------------------------------------------------------

    def register(self, name: str, pid: Pid) -> None:
        """Register ``pid`` under ``name``; raises `NameTaken` or `NoProc`."""
        if not isinstance(name, str):
            raise TypeError(f"a registered name must be a str, not {name!r}")
        proc = self.lookup(pid)
        if proc is None:
            raise NoProc(pid, "register")
        if name in self._names:
            raise NameTaken(f"{name!r} is already registered to {self._names[name].pid!r}")
        if proc.name is not None:
            raise NameTaken(f"{pid!r} is already registered as {proc.name!r}")
        proc.name = name
        self._names[name] = proc

    def unregister(self, name: str) -> None:
        """Remove ``name``; raises `UnknownName` if it is not registered."""
        proc = self._names.pop(name, None)
        if proc is None:
            raise UnknownName(f"no process registered as {name!r}")
        proc.name = None

    def whereis(self, name: str) -> Pid | None:
        proc = self._names.get(name)
        return None if proc is None else proc.pid

    def registered(self) -> list[str]:
        return list(self._names)

    # -- links, monitors, exit signals ---------------------------------------------

    def link(self, proc: Process, pid: Pid) -> None:
        """Link ``proc`` and ``pid`` (idempotent). A dead ``pid`` sends ``proc`` an
        exit signal ``noproc`` (a message if it traps exits, else `NoProc` is raised)."""
        if pid == proc.pid:
            return
        other = self.lookup(pid)
        if other is None:
            if pid.node != self.name and self.remote is not None and self.remote.link(proc.pid, pid):
                proc.add_link(pid)
                return
            reason = NOPROC if pid.node == self.name else NOCONNECTION
            if proc.trap_exit:
                proc.put(Exit(pid, reason))
                return
            raise NoProc(pid, "link")
        proc.add_link(pid)
        other.add_link(proc.pid)

    def unlink(self, proc: Process, pid: Pid) -> None:
        proc.remove_link(pid)
        other = self.lookup(pid)
        if other is not None:
            other.remove_link(proc.pid)
        elif pid.node != self.name and self.remote is not None:
            self.remote.unlink(proc.pid, pid)

    def monitor(self, watcher: Process, pid: Pid) -> Ref:
        """Monitor ``pid``; a `Down` arrives when it ends, at once (``noproc``) if dead."""
        ref = self.make_ref()
        target = self.lookup(pid)
        if target is None:
            if pid.node != self.name and self.remote is not None and self.remote.monitor(watcher.pid, pid, ref):
                watcher.add_monitor(ref, pid)
                return ref
            reason = NOPROC if pid.node == self.name else NOCONNECTION
            watcher.put(Down(ref, pid, reason))
            return ref
        watcher.add_monitor(ref, pid)
        target.add_monitored_by(ref, watcher.pid)
        return ref

    def demonitor(self, watcher: Process, ref: Ref, flush: bool = False) -> bool:
        """Remove a monitor; True if it was active. ``flush`` drops a queued `Down`."""
        target_pid = watcher.pop_monitor(ref)
        if target_pid is not None:
            target = self.lookup(target_pid)
            if target is not None:
                target.pop_monitored_by(ref)
            elif target_pid.node != self.name and self.remote is not None:
                self.remote.demonitor(watcher.pid, target_pid, ref)
        if flush:
            # `drop`, not `receive_nowait`: bookkeeping is not a message handled.
            watcher.drop(lambda m: type(m) is Down and m.ref == ref)
        return target_pid is not None

    def exit(self, sender: Pid | None, pid: Pid, reason: Reason) -> None:
        """Send an exit signal, as Erlang's ``exit(Pid, Reason)``."""
        target = self.lookup(pid)
        if target is None:
            if pid.node != self.name and self.remote is not None:
                self.remote.exit(sender, pid, reason)
            return
        if reason == KILL:
            self.kill(target, KILLED)
        elif target.trap_exit:
            target.put(Exit(sender if sender is not None else pid, reason))
        elif reason != NORMAL or sender == pid:
            self.terminate(target, reason)

    def link_exited(self, target_pid: Pid, sender: Pid, reason: Reason) -> None:
        """Remote ``sender``, linked to local ``target_pid``, ended with ``reason`` (or its
        node went down: ``noconnection``). Called by the distribution; no-op unless the
        link is still there."""
        target = self.lookup(target_pid)
        if target is not None and sender in target.links:
            target.remove_link(sender)
            self._link_signal(target, sender, reason)

    def _link_signal(self, target: Process, sender: Pid, reason: Reason) -> None:
        # A linked process ended: trapped -> message; "normal" -> ignored; else death.
        if target.trap_exit:
            target.put(Exit(sender, reason))
        elif reason != NORMAL:
            self.terminate(target, KILLED if reason == KILL else reason)

    def terminate(self, proc: Process, reason: Reason) -> None:
        """End ``proc`` with ``reason`` by cancelling its task, so that its cleanup
        (``finally`` blocks, `GenServer.terminate`) runs before links and monitors are
        told. A task that has not started yet ends at once."""
        if not proc.alive or proc.pending_exit is not None:
            return
        proc.pending_exit = reason
        task = proc.task
        if task is not None:
            coro = task.get_coro()
            if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) in _STARTED:
                task.cancel()
                return
        # A task that never ran cannot catch the cancellation, so `run_process` would
        # never report its exit: end it here instead.
        self.kill(proc, reason)

    def kill(self, proc: Process, reason: Reason = KILLED) -> None:
        """End ``proc`` now: links and monitors are told at once, then its task is
        cancelled. This is ``kill``, which no process can trap or delay."""
        if not proc.alive:
            return
        self.process_exited(proc, reason, crashed=False)
        task = proc.task
        if task is not None and not task.done():
            task.cancel()

    def process_exited(self, proc: Process, reason: Reason, crashed: bool) -> None:
        """Remove a process that ended and tell its links and monitors, once."""
        proc.alive = False
        proc.final_reason = reason
        proc._queue = None  # undelivered messages die with the process (pids may outlive it)
        self._procs.pop(proc.pid.serial, None)
        if proc.name is not None:
            self._names.pop(proc.name, None)
        pid = proc.pid
        links = proc.take_links()
        if links:
            for other_pid in links:
                other = self.lookup(other_pid)
                if other is not None:
                    other.remove_link(pid)
                    self._link_signal(other, pid, reason)
                elif other_pid.node != self.name and self.remote is not None:
                    self.remote.link_exited(pid, other_pid, reason)
        for ref, watcher_pid in proc.take_monitored_by():
            watcher = self.lookup(watcher_pid)
            if watcher is not None:
                watcher.pop_monitor(ref)
                watcher.put(Down(ref, pid, reason))
            elif watcher_pid.node != self.name and self.remote is not None:
                self.remote.down(pid, watcher_pid, ref, reason)
        for ref, target_pid in proc.take_monitors():
            target = self.lookup(target_pid)
            if target is not None:
                target.pop_monitored_by(ref)
            elif target_pid.node != self.name and self.remote is not None:
                self.remote.demonitor(pid, target_pid, ref)
        if crashed:
            # Reported after links and monitors are told: as in OTP, nothing in
            # reporting can keep an exit signal from them (`report` never raises).
            self.crashes += 1
            _crash.report(proc, reason)

    # -- timers -------------------------------------------------------------------

    def send_after(self, delay: float, dest: Dest, message: Any) -> Ref:
        """Send ``message`` to ``dest`` after ``delay`` seconds; returns a timer ref."""
        if type(dest) is not Pid and not isinstance(dest, str):
            # Checked now: at expiry the error would have nobody to go to.
            raise TypeError(f"send_after destination must be a Pid or a registered name, not {dest!r}")
        ref = self.make_ref()
        self._timers[ref] = self.loop.call_later(delay, self._fire, ref, dest, message)
        return ref

    def _fire(self, ref: Ref, dest: Dest, message: Any) -> None:
        del self._timers[ref]
        with contextlib.suppress(UnknownName):  # the name went away: dropped, as in Erlang
            self.send(dest, message)

    def cancel_timer(self, ref: Ref) -> float | None:
        """Cancel a timer; returns the seconds it had left, or None if it already fired."""
        handle = self._timers.pop(ref, None)
        if handle is None:
            return None
        handle.cancel()
        return max(0.0, handle.when() - self.loop.time())

    # -- blocking work ------------------------------------------------------------

    def offload(self, pid: Pid, fn: Callable[..., Any], args: tuple[Any, ...]) -> Ref:
        """Run ``fn(*args)`` in the thread pool; ``pid`` gets `Offloaded` when it ends."""
        ref = self.make_ref()
        future = self.loop.run_in_executor(self.executor(), fn, *args)
        self._offloaded.add(future)

        def deliver(done: asyncio.Future[Any]) -> None:
            self._offloaded.discard(done)
            if done.cancelled():
                return  # only `stop` cancels, and then nobody is left to tell
            error = done.exception()
            self.send(pid, Offloaded(ref, done.result()) if error is None else Offloaded(ref, error=error))

        future.add_done_callback(deliver)
        return ref

    def executor(self) -> Executor:
        """The node's thread pool for `run_blocking` (created on first use)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_blocking_threads, thread_name_prefix=f"alight-{self.name}"
            )
        return self._executor
