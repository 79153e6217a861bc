"""The cluster launcher: N nodes of one application as OS processes on this machine.

``alight cluster start --nodes N --app MODULE:APP`` is a thin shell around
`ClusterLauncher`: `start` launches ``alight node`` N times (``node{i}@HOST``; node 0
first, then the others with node 0 as their seed) and returns once every node has
printed its `NodeReady` line; `monitor` watches them until asked to stop, relaunching
a node that died when ``restart`` is on; `stop` sends SIGTERM to every node (in
reverse order), waits ``stop_timeout`` seconds, then SIGKILLs what is left.

Ports: by default every node binds the same HTTP port with ``SO_REUSEPORT`` and the
kernel spreads new connections over them, so one machine's cores are all used;
``port_per_node`` gives node i port ``port + i`` instead. Cluster addresses are
``tcp://CLUSTER_HOST:<free port>``, learnt from each node's ready line.

The cluster secret travels to the nodes in their environment
(``ALIGHT_CLUSTER_SECRET``), never on a command line (which any local user can read
in ``ps``). Each node's stdin is a pipe held by the launcher: a node whose launcher is
gone, even SIGKILLed, sees end of file and stops (``alight node --exit-with-parent``).

Restarts follow a supervisor's ``permanent`` policy with OTP's restart intensity: a
node is relaunched (same name, new incarnation, new pid) unless it already needed
more than ``max_restarts`` restarts in ``restart_period`` seconds; then it stays
``failed``. A restarted node joins through the nodes that are up.

Output: with ``log_dir`` each node's output is appended to its own file; else it goes
to the launcher's stderr (but for its ready line, which is the launcher's), each line
prefixed with the node's name, at ``node_log_level``, through a
`LineWriter`: the event loop never waits on a reader, a reader that stops reading
loses lines (counted in `ClusterLauncher.output_dropped`, and noted in the output once
it reads again) rather than stopping the launcher and its restarts.

State changes call ``on_change`` with the node table and, with ``status_file``,
rewrite it atomically (write a temporary file, then rename) as
``{"nodes": [{"name", "pid", "http_port", "cluster_address", "state"}]}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ._launcher_output import LineWriter
from .actors.lowlevel import RestartIntensity
from .cluster import ENV_VAR, load_secret
from .errors import AlightError
from .runner import NodeReady

log = logging.getLogger("alight.launcher")

STARTING, UP, DOWN, FAILED, STOPPED = "starting", "up", "down", "failed", "stopped"
"""A node's states in the launcher's table."""

OUTPUT_TAIL = 20
"""Lines of a node's output kept to explain a failed start."""


class LaunchError(AlightError):
    """A node did not become ready (it exited, or timed out); the message shows the
    end of its output."""


@dataclass(frozen=True, slots=True)
class LaunchConfig:
    """What `ClusterLauncher` starts. Raises `ValueError` naming a bad field."""

    app: str
    """``MODULE:APP``, importable from the launcher's working directory."""
    nodes: int
    port: int = 4000
    host: str = "127.0.0.1"
    """HTTP bind address; also the host part of node names."""
    port_per_node: bool = False
    restart: bool = False
    cluster_host: str = "127.0.0.1"
    status_file: Path | None = None
    log_dir: Path | None = None
    """Each node's output goes to ``LOG_DIR/NAME.log`` (appended); else to the
    launcher's ``output`` (stderr), each line prefixed with ``[NAME]``."""
    node_log_level: str | None = None
    """What the nodes log (``alight node --log-level``: debug, info, warning, error);
    None: the node's default (info)."""
    ready_timeout: float = 30.0
    stop_timeout: float = 10.0
    max_restarts: int = 5
    restart_period: float = 30.0

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"nodes must be at least 1, got {self.nodes}")
        last = self.port + (self.nodes - 1 if self.port_per_node else 0)
        if self.port < 1 or last > 65535:
            raise ValueError(f"port must be in 1..65535 for every node, got {self.port}..{last}")
        if ":" not in self.app:
            raise ValueError(f"app must be MODULE:APP, got {self.app!r}")
        if self.ready_timeout <= 0 or self.stop_timeout <= 0:
            raise ValueError("ready_timeout and stop_timeout must be > 0")
        if self.node_log_level not in (None, "debug", "info", "warning", "error"):
            raise ValueError(f"node_log_level must be debug, info, warning or error, got {self.node_log_level!r}")

    def name(self, index: int) -> str:
        return f"node{index}@{self.host}"

    def http_port(self, index: int) -> int:
        return self.port + index if self.port_per_node else self.port


@dataclass(slots=True)
class NodeStatus:
    """One row of the launcher's table."""

    name: str
    http_port: int
    state: str = STARTING
    pid: int | None = None
    cluster_address: str | None = None
    launches: int = 0
    """How many times this node was launched (1 + restarts)."""
    exit_code: int | None = None
    """The last life's exit status (negative: killed by that signal)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "http_port": self.http_port,
            "cluster_address": self.cluster_address,
            "state": self.state,
        }


def node_command(config: LaunchConfig, index: int, seeds: list[str], python: str = sys.executable) -> list[str]:
    """The ``alight node`` command line of node ``index`` (no secret: see the module doc)."""
    command = [python, "-m", "alight.cli", "node", "--name", config.name(index), "--app", config.app]
    command += ["--host", config.host, "--port", str(config.http_port(index))]
    command += ["--cluster-bind", config.cluster_host, "--cluster-port", "0", "--exit-with-parent"]
    if not config.port_per_node:
        command.append("--reuse-port")
    if seeds:
        command += ["--seeds", ",".join(seeds)]
    if config.node_log_level is not None:
        command += ["--log-level", config.node_log_level]
    return command


def status_document(nodes: list[NodeStatus]) -> dict[str, Any]:
    """The status file's JSON document."""
    return {"nodes": [node.to_json() for node in nodes]}


def write_status_file(path: Path, nodes: list[NodeStatus]) -> None:
    """Replace ``path`` atomically: readers see the old document or the new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(status_document(nodes), indent=2) + "\n")
    os.replace(temporary, path)


@dataclass(eq=False)
class _Life:
    """One OS process of a node, and the tasks that own its pipes."""

    index: int
    process: asyncio.subprocess.Process
    ready: asyncio.Future[NodeReady]
    started: float
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_TAIL))
    reader: asyncio.Task[None] | None = None
    exited: asyncio.Task[int] | None = None


class ClusterLauncher:
    """Starts, watches and stops the nodes of one cluster (see the module doc).

    ``secret`` is the cluster secret given to every node (`load_secret` checks it).
    ``on_change(nodes)`` is called after every change of the table. ``output`` takes
    the nodes' output when there is no ``log_dir`` (default: a `LineWriter` on stderr
    of the launcher's own, closed by `stop`; one given is the caller's to close).
    Use it as::

        launcher = ClusterLauncher(config, secret=secret)
        try:
            await launcher.start()
            await launcher.monitor(stopping)   # until stopping is set
        finally:
            await launcher.stop()
    """

    def __init__(
        self,
        config: LaunchConfig,
        *,
        secret: str,
        on_change: Callable[[list[NodeStatus]], None] | None = None,
        output: LineWriter | None = None,
        python: str = sys.executable,
    ) -> None:
        load_secret(secret=secret)  # BadSecret now rather than N times in the nodes
        self.config = config
        self.nodes = [NodeStatus(config.name(i), config.http_port(i)) for i in range(config.nodes)]
        self.on_change = on_change
        self._secret = secret
        self._output = output
        self._own_output = output is None
        self._python = python
        self._lives: dict[int, _Life] = {}
        self._intensity = [RestartIntensity(config.max_restarts, config.restart_period) for _ in self.nodes]
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Launch every node and return once all are ready; raises `LaunchError` (the
        nodes already started keep running: call `stop`)."""
        first = await self._launch(0, [])
        await self._wait_ready(first)
        seeds = [self._address(0)]
        lives = [await self._launch(i, seeds) for i in range(1, self.config.nodes)]
        for life in lives:
            await self._wait_ready(life)

    async def monitor(self, stopping: asyncio.Event) -> None:
        """Watch the nodes until ``stopping`` is set, or until every node is down
        for good (``restart`` off, or each one breached its restart intensity)."""
        stop_wait = asyncio.ensure_future(stopping.wait())
        try:
            while not stopping.is_set() and self._lives:
                events: set[asyncio.Future[Any]] = {stop_wait}
                deadline: float | None = None
                for life in self._lives.values():
                    assert life.exited is not None
                    events.add(life.exited)
                    if not life.ready.done():
                        events.add(life.ready)
                        limit = life.started + self.config.ready_timeout
                        deadline = limit if deadline is None else min(deadline, limit)
                timeout = None if deadline is None else max(0.0, deadline - self._now())
                await asyncio.wait(events, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not stopping.is_set():
                    await self._check()
        finally:
            stop_wait.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop_wait

    async def stop(self) -> None:
        """SIGTERM every node (last first), wait up to ``stop_timeout`` seconds, then
        SIGKILL the rest; returns when every node process has exited."""
        self._stopping = True
        lives = sorted(self._lives.values(), key=lambda life: -life.index)
        for life in lives:
            with contextlib.suppress(ProcessLookupError):
                life.process.send_signal(signal.SIGTERM)
        exits = [life.exited for life in lives if life.exited is not None]
        if exits:
            _done, late = await asyncio.wait(exits, timeout=self.config.stop_timeout)
            for life in lives:
                if life.exited in late:
                    log.warning(
                        "node %s did not stop in %ss: killing it", self.nodes[life.index].name, self.config.stop_timeout
                    )
                    self._kill(life)
            if late:
                await asyncio.wait(late)
        for life in lives:
            await self._reap(life)
            self.nodes[life.index].state = STOPPED
        self._changed()
        if self._own_output and self._output is not None:
            await self._output.aclose()

    @property
    def output_dropped(self) -> int:
        """Lines ``output`` dropped, its reader too slow or gone (node output, and
        whatever else shares that writer); 0 before any node output or with ``log_dir``."""
        return 0 if self._output is None else self._output.dropped

    # -- one node ---------------------------------------------------------------------------

    async def _launch(self, index: int, seeds: list[str]) -> _Life:
        status = self.nodes[index]
        command = node_command(self.config, index, seeds, self._python)
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, ENV_VAR: self._secret},
            start_new_session=True,  # its own group: a Ctrl-C reaches the launcher only
        )
        life = _Life(index, process, asyncio.get_running_loop().create_future(), self._now())
        life.reader = asyncio.create_task(self._read(life), name=f"launcher.read.{status.name}")
        life.exited = asyncio.create_task(process.wait(), name=f"launcher.wait.{status.name}")
        self._lives[index] = life
        status.pid = process.pid
        status.state = STARTING
        status.cluster_address = None
        status.launches += 1
        log.info("launched %s (pid %d)", status.name, process.pid)
        self._changed()
        return life

    async def _wait_ready(self, life: _Life) -> None:
        name = self.nodes[life.index].name
        try:
            async with asyncio.timeout(self.config.ready_timeout):
                ready = await asyncio.shield(life.ready)
        except TimeoutError:
            raise LaunchError(self._explain(life, f"{name} was not ready in {self.config.ready_timeout}s")) from None
        except LaunchError as error:
            raise LaunchError(self._explain(life, str(error))) from None
        self._on_ready(life, ready)

    def _on_ready(self, life: _Life, ready: NodeReady) -> None:
        status = self.nodes[life.index]
        if status.state == UP:
            return
        status.state = UP
        status.cluster_address = ready.cluster_address
        self._changed()

    async def _check(self) -> None:
        """Act on what happened: readiness, timeouts, exits (and restarts)."""
        for index, life in list(self._lives.items()):
            assert life.exited is not None
            status = self.nodes[index]
            if life.exited.done():
                await self._reap(life)
                del self._lives[index]
                status.exit_code = life.exited.result()
                status.state = DOWN
                log.warning("node %s (pid %s) exited with status %s", status.name, status.pid, status.exit_code)
                self._changed()
                if self.config.restart:
                    await self._restart(index)
            elif life.ready.done() and life.ready.exception() is None:
                self._on_ready(life, life.ready.result())
            elif not life.ready.done() and self._now() - life.started >= self.config.ready_timeout:
                log.warning("node %s was not ready in %ss: killing it", status.name, self.config.ready_timeout)
                self._kill(life)

    async def _restart(self, index: int) -> None:
        status = self.nodes[index]
        if not self._intensity[index].add(self._now()):
            status.state = FAILED
            log.error(
                "node %s needed more than %d restarts in %ss: giving up on it",
                status.name,
                self.config.max_restarts,
                self.config.restart_period,
            )
            self._changed()
            return
        seeds = [node.cluster_address for node in self.nodes if node.state == UP and node.cluster_address]
        await self._launch(index, seeds)

    def _kill(self, life: _Life) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(life.process.pid, signal.SIGKILL)

    async def _reap(self, life: _Life) -> None:
        """Close the node's stdin and wait for its output to end (it has exited)."""
        if life.process.stdin is not None:
            life.process.stdin.close()
        if life.reader is not None:
            await life.reader
        if life.exited is not None:
            await life.exited

    async def _read(self, life: _Life) -> None:
        """Copy the node's output (to its log file or prefixed) and spot its ready line."""
        status = self.nodes[life.index]
        stdout = life.process.stdout
        assert stdout is not None
        sink: IO[str] | LineWriter
        log_file: IO[str] | None = None
        if self.config.log_dir is not None:  # a file: a write never waits on a reader
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            sink = log_file = (self.config.log_dir / f"{status.name}.log").open("a", encoding="utf-8")
        else:
            if self._output is None:
                self._output = LineWriter(sys.stderr)
            sink = self._output
        prefix = "" if log_file is not None else f"[{status.name}] "
        try:
            while True:
                try:
                    raw = await stdout.readline()
                except ValueError:  # a line over the stream's 64 KiB limit: copy a piece
                    raw = await stdout.read(65536)
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\n")
                life.tail.append(line)
                ready = NodeReady.parse(line)
                if ready is None or log_file is not None:  # the ready line is for the launcher, not a reader
                    sink.write(f"{prefix}{line}\n")
                    sink.flush()
                if ready is not None and not life.ready.done():
                    life.ready.set_result(ready)
        finally:
            if log_file is not None:
                log_file.close()
            if not life.ready.done():
                life.ready.set_exception(LaunchError(f"{status.name} exited before it was ready"))
                life.ready.exception()  # retrieved here: monitor may never look at it

    # -- helpers -----------------------------------------------------------------------------

    def _address(self, index: int) -> str:
        address = self.nodes[index].cluster_address
        assert address is not None
        return address

    def _explain(self, life: _Life, what: str) -> str:
        tail = "\n".join(f"  {line}" for line in life.tail)
        return f"{what}; its last output:\n{tail}" if tail else f"{what} (it printed nothing)"

    def _changed(self) -> None:
        if self.config.status_file is not None:
            write_status_file(self.config.status_file, self.nodes)
        if self.on_change is not None:
            self.on_change(self.nodes)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()


__all__ = [
    "DOWN",
    "FAILED",
    "STARTING",
    "STOPPED",
    "UP",
    "ClusterLauncher",
    "LaunchConfig",
    "LaunchError",
    "LineWriter",
    "NodeStatus",
    "node_command",
    "status_document",
    "write_status_file",
]
