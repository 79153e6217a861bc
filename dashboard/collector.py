"""The collector: one process per node that samples it for the dashboard.

It is registered by name (``<endpoint name>.dashboard``) on every node whose endpoint
has ``dashboard=True``, so a dashboard on any node of a cluster reaches the collector
of any other node as ``(name, node)``, as LiveDashboard reaches other nodes by rpc.
A process that wants to watch a node sends `Watch` there; the collector answers with
`Watching` (its pid), then sends a `Snapshot` at once and every ``interval`` seconds
for as long as a watcher is alive (it monitors each one). With no watcher it does not
sample at all.

``call(collector, TakeSnapshot())`` returns a snapshot now; ``ProcessAction("info",
"<0.42.0>")`` and ``ProcessAction("kill", "<0.42.0>")`` answer an `ActionResult`: the
pid string comes from a browser and is parsed strictly (`parse_pid`).

The snapshot is a JSON-safe dict (see `_snapshot`); its parts are listed in
`Collector.snapshot`. Lists are bounded (`MAX_PROCESSES`, `MAX_TOPICS`,
`MAX_CHILDREN`, `MAX_TREE_NODES`, `MAX_REPORTS`); what is left out is counted.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..actors import (
    KILL,
    ActorError,
    BlockReport,
    ChildInfo,
    Down,
    From,
    GenServer,
    NoReply,
    Pid,
    Ref,
    Reply,
    current_node,
    demonitor,
    monitor,
    process_info,
    reply,
    self_pid,
    send,
    send_after,
    which_children,
)
from ..actors import (
    exit as exit_signal,
)
from ..channels.presence import TrackerError
from . import _snapshot as snap
from .errors import BadPid

if TYPE_CHECKING:
    from ..actors import Node
    from ..channels.endpoint import Endpoint
    from ..cluster.distribution import Distribution

MAX_PROCESSES = 500
"""Process rows per snapshot: those with the longest mailboxes, then the busiest."""
MAX_TOPICS = 200
"""Topics per snapshot, those with the most subscribers first."""
MAX_CHILDREN = 50
"""Children shown per supervisor (a DynamicSupervisor of channels may have thousands)."""
MAX_TREE_NODES = 400
"""Supervision-tree entries per snapshot in all."""
MAX_DEPTH = 16
"""Supervisor nesting the tree walk follows."""
MAX_REPORTS = 20
"""Watchdog reports kept (the newest)."""
CALL_TIMEOUT = 1.0
"""Seconds a supervisor has to answer ``which_children`` before it is shown unresponsive."""


@dataclass(frozen=True, slots=True)
class Watch:
    """Sent to a collector (by name): start sending snapshots to ``watcher``."""

    watcher: Pid


@dataclass(frozen=True, slots=True)
class Unwatch:
    """Sent to a collector: stop sending snapshots to ``watcher``."""

    watcher: Pid


@dataclass(frozen=True, slots=True)
class Watching:
    """The collector's answer to `Watch`: monitor ``collector``, call it for info and kill."""

    collector: Pid
    node: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A sample of ``node``: ``data`` is the JSON-safe dict the page gets."""

    node: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Call a collector with this: it answers a snapshot (the dict) at once."""


@dataclass(frozen=True, slots=True)
class ProcessAction:
    """Call a collector with this: ``"info"`` (the detail of ``pid``) or ``"kill"``
    (``exit(pid, "kill")``) on a process of its node; ``pid`` as the page shows it
    (``"<0.42.0>"``), parsed strictly. The answer is an `ActionResult`."""

    action: str
    pid: str


@dataclass(frozen=True, slots=True)
class ActionResult:
    """A collector's answer to `ProcessAction`: ``ok`` and its ``value`` (the detail,
    or ``{"killed": pid}``), or not ``ok`` and ``value`` says why, for the page."""

    ok: bool
    value: Any


ACTIONS = ("info", "kill")
"""What `ProcessAction` can ask."""


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


_TICK = _Tick()


class Collector(GenServer):
    """Samples its node for the dashboard; see the module docstring. Started by the
    endpoint's tree (``Endpoint(dashboard=True)``), one per node."""

    async def init(self, endpoint: Endpoint, interval: float) -> None:
        self.endpoint = endpoint
        self.interval = interval
        self.node = current_node()
        self.watchers: dict[Pid, Ref] = {}
        self.ticking = False
        self.reports: deque[dict[str, Any]] = deque(maxlen=MAX_REPORTS)
        for report in tuple(self.node.watchdog.reports)[-MAX_REPORTS:]:
            self.reports.append(snap.report_row(report))
        self.node.watchdog.subscribe(self_pid())
        self.previous: tuple[float, dict[str, dict[str, int | float]]] | None = None
        self.rates: dict[str, dict[str, float]] = {}

    async def terminate(self, reason: Any) -> None:
        self.node.watchdog.unsubscribe(self_pid())

    # -- messages ---------------------------------------------------------------------

    async def handle_info(self, message: Any) -> None:
        if isinstance(message, Watch):
            await self._watch(message.watcher)
        elif isinstance(message, Unwatch):
            ref = self.watchers.pop(message.watcher, None)
            if ref is not None:
                demonitor(ref, flush=True)
        elif isinstance(message, Down):
            self.watchers.pop(message.pid, None)
        elif isinstance(message, BlockReport):
            self.reports.append(snap.report_row(message))
        elif isinstance(message, _Tick):
            self.ticking = False
            if self.watchers:
                self._publish(await self.snapshot())
        # Anything else was sent here by mistake: dropped.

    async def _watch(self, watcher: Pid) -> None:
        if watcher not in self.watchers:
            self.watchers[watcher] = monitor(watcher)
        send(watcher, Watching(self_pid(), self.node.name))
        send(watcher, Snapshot(self.node.name, await self.snapshot()))
        if not self.ticking:
            self.ticking = True
            send_after(self.interval, self_pid(), _TICK)

    def _publish(self, data: dict[str, Any]) -> None:
        message = Snapshot(self.node.name, data)
        for watcher in self.watchers:
            send(watcher, message)
        self.ticking = True
        send_after(self.interval, self_pid(), _TICK)

    async def handle_call(self, request: Any, from_: From) -> Reply | NoReply:
        if type(request) is TakeSnapshot:
            return Reply(await self.snapshot())
        if type(request) is not ProcessAction or request.action not in ACTIONS:
            return Reply(ActionResult(False, f"unknown request {request!r}"[:200]))
        try:
            pid = snap.parse_pid(request.pid, self.node.name, self.node.creation)
        except BadPid as error:
            return Reply(ActionResult(False, str(error)))
        info = process_info(pid)
        if info is None:
            return Reply(ActionResult(False, f"no process {request.pid} on {self.node.name}"))
        if request.action == "info":
            return Reply(ActionResult(True, snap.process_detail(info)))
        answer = ActionResult(True, {"killed": str(pid)})
        if pid == self_pid():  # killing the collector itself: answer first
            reply(from_, answer)
            exit_signal(pid, KILL)
            return NoReply()
        exit_signal(pid, KILL)
        return Reply(answer)

    # -- sampling -----------------------------------------------------------------------

    async def snapshot(self) -> dict[str, Any]:
        """Sample the node now: ``node``, ``nodes`` (this node and every peer it knows,
        with their state), ``totals``, ``tree`` (the supervision tree from the root
        supervisor), ``processes`` (the busiest `MAX_PROCESSES`), ``topics`` (channels
        and presence per topic), ``counters`` and ``rates`` (per second since the last
        sample) of PubSub, the listener, the endpoint and the cluster links, ``drops``
        and ``watchdog``."""
        node = self.node
        # Only the busiest processes get a full `process_info`: picking them reads two
        # counters per process, so a node with many thousands stays cheap to sample.
        every = node.processes()
        top = heapq.nlargest(MAX_PROCESSES, every, key=lambda proc: (len(proc), proc.received))
        rows = []
        for proc in top:
            info = process_info(proc.pid)
            if info is not None:
                rows.append(snap.process_row(info))
        now = time.monotonic()
        sample = self._counters()
        previous = self.previous
        # Rates over at least half an interval: a snapshot asked for right after another
        # (a second page joining) repeats the last rates instead of dividing by ~0.
        if previous is None or now - previous[0] >= self.interval / 2:
            self.previous = (now, sample)
            if previous is not None:
                self.rates = {
                    group: snap.rates(previous[1].get(group, {}), values, now - previous[0])
                    for group, values in sample.items()
                }
        topics = self._topics()
        return {
            "node": node.name,
            "at": time.time(),
            "interval": self.interval,
            "nodes": nodes_of(node),
            "totals": {
                "processes": len(every),
                "crashes": node.crashes,
                "registered": len(node.registered()),
                "topics": topics[1],
            },
            "tree": await self._tree(),
            "processes": snap.busiest(rows, MAX_PROCESSES),
            "topics": topics[0],
            "counters": sample,
            "rates": self.rates,
            "drops": snap.drops(sample),
            "watchdog": {
                "threshold_ms": None if node.watchdog.threshold is None else node.watchdog.threshold * 1000,
                "reported": node.watchdog.reported,
                "reports": list(reversed(self.reports)),
            },
        }

    def _counters(self) -> dict[str, dict[str, int | float]]:
        endpoint = self.endpoint
        out = {
            "pubsub": snap.counters(endpoint.pubsub.stats),
            "server": snap.counters(endpoint.transport_stats),
            "endpoint": snap.counters(endpoint.stats),
        }
        distribution = distribution_of(self.node)
        if distribution is not None:
            stats = distribution.stats
            out["cluster"] = {**snap.counters(stats.links), **snap.counters(stats)}
        return out

    def _topics(self) -> tuple[list[dict[str, Any]], int]:
        pubsub = self.endpoint.pubsub
        presence = self.endpoint.presence
        topics = pubsub.topics()
        shown = sorted(topics, key=lambda topic: (-pubsub.subscriber_count(topic), topic))[:MAX_TOPICS]
        rows = []
        for topic in shown:
            entries = None
            if presence is not None:
                try:
                    entries = presence.tracker.list(topic)
                except TrackerError:  # its shard is restarting: no count this time
                    entries = None
            rows.append(snap.topic_row(topic, pubsub.subscriber_count(topic), entries))
        return rows, len(topics)

    async def _tree(self) -> dict[str, Any]:
        root = self.node.root
        top = snap.tree_node("alight.root", root, "supervisor", process_info(root))
        budget = [MAX_TREE_NODES]
        await self._fill(top, root, 0, budget)
        return top

    async def _fill(self, entry: dict[str, Any], sup: Pid, depth: int, budget: list[int]) -> None:
        try:
            children = await which_children(sup, timeout=CALL_TIMEOUT)
        except ActorError:  # busy (restarting a child), or exited meanwhile
            entry["unresponsive"] = True
            return
        if not (isinstance(children, list) and all(type(child) is ChildInfo for child in children)):
            # A process started with type="supervisor" that is not one answers the
            # call with anything: shown unresponsive, never a crash of the collector
            # (which, at every sample, would take the endpoint's tree down with it).
            entry["unresponsive"] = True
            return
        if depth >= MAX_DEPTH:
            entry["more"] = len(children)
            return
        for index, child in enumerate(children):
            if index >= MAX_CHILDREN or budget[0] <= 0:
                entry["more"] = len(children) - index
                break
            budget[0] -= 1
            local = child.pid is not None and child.pid.node == self.node.name
            info = process_info(child.pid) if local and child.pid is not None else None
            row = snap.tree_node(child.id, child.pid, child.type, info, child.restart)
            entry["children"].append(row)
            if child.type == "supervisor" and info is not None and child.pid is not None:
                await self._fill(row, child.pid, depth + 1, budget)


def nodes_of(node: Node) -> list[dict[str, Any]]:
    """``node`` (``"self": True``) and every peer it knows of, with their state."""
    nodes: list[dict[str, Any]] = [{"name": node.name, "state": "up", "self": True}]
    distribution = distribution_of(node)
    if distribution is not None:
        nodes += [{"name": name, "state": state, "self": False} for name, state in distribution.peer_states().items()]
    return nodes


def distribution_of(node: Node) -> Distribution | None:
    """The node's `Distribution` when it is in a cluster, else None
    (`alight.cluster.distribution_of`)."""
    if node.remote is None:
        return None
    # Imported only on a clustered node: a lone node needs no ZeroMQ.
    from ..cluster import distribution_of as cluster_distribution_of

    return cluster_distribution_of(node)


__all__ = [
    "CALL_TIMEOUT",
    "MAX_PROCESSES",
    "Collector",
    "Snapshot",
    "Unwatch",
    "Watch",
    "Watching",
    "distribution_of",
    "nodes_of",
]
