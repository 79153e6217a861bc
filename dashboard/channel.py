"""The dashboard's channel: live snapshots of one node, and its process actions.

A browser joins ``dashboard:<node name>`` on the dashboard's socket; the node may be
this one or any peer this node knows of. The channel asks that node's collector to
watch (`Watch`, sent to ``(name, node)``) and pushes every `Snapshot` it gets as a
``"snapshot"`` event. To look at another node, the page leaves and joins that node's
topic (Phoenix's one-channel-per-topic, as LiveDashboard puts the node in the URL).

Events from the page (``handle_in``):

- ``"info"`` ``{"pid": "<0.42.0>"}``: `process_info` of that process of the watched
  node; replies ``ok`` with the detail, or ``error`` with a ``reason``;
- ``"kill"`` ``{"pid": "<0.42.0>"}``: ``exit(pid, "kill")`` on the watched node (its
  supervisor restarts it as its restart type says); same replies.

Pids are parsed strictly by the collector; bad input gets an ``error`` reply and the
channel goes on. Broadcasts on a ``dashboard:`` topic never reach the page (see
`DashboardChannel.intercepts`). If the collector goes away (killed from this very page, or its node
went down) the channel pushes ``"collector_down"``, then asks again every
`REWATCH_INTERVAL` seconds, pushing ``"nodes"`` (``{"nodes": [...]}``, the cluster as this
node sees it) each time; snapshots resume when a collector answers. A snapshot of
another node carries the nodes as this node sees them too: the page's nodes table is
always its own node's view.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..actors import ActorError, Down, Pid, Ref, call, demonitor, monitor, self_pid, send, send_after
from ..channels.channel import Channel, Error, NoReply, Ok, Reply, Stop
from ..channels.message import Payload
from ..channels.socket import Socket
from ..transports.base import ConnectInfo
from .collector import (
    ACTIONS,
    ActionResult,
    ProcessAction,
    Snapshot,
    Unwatch,
    Watch,
    Watching,
    distribution_of,
    nodes_of,
)
from .errors import DashboardError

if TYPE_CHECKING:
    from .dashboard import Dashboard

TOPIC_PREFIX = "dashboard:"
REWATCH_INTERVAL = 1.0
"""Seconds between requests to a collector that does not answer (restarting, or its node is down)."""
ACTION_TIMEOUT = 5.0
"""Seconds the collector has to answer ``info`` or ``kill``."""


@dataclass(frozen=True, slots=True)
class _Rewatch:
    pass


_REWATCH = _Rewatch()


COLLECTOR_ASSIGN = "dashboard_collector"
"""The assign (set by `DashboardSocket.connect`) that names the collector to watch."""


class DashboardChannel(Channel):
    """``dashboard:<node>``: see the module docstring."""

    # The page gets only what the collector sends: a broadcast on the topic (app code,
    # or an app channel with a catch-all route relaying its clients) is dropped in
    # `handle_out` rather than written to the page by the fastlane.
    intercepts: ClassVar[tuple[str, ...]] = ("snapshot", "nodes", "collector_down", "phx_close", "phx_error")

    collector: Pid | None = None
    collector_ref: Ref | None = None

    async def join(self, topic: str, payload: Payload) -> Ok | Error:
        node = self.endpoint.node
        target = topic[len(TOPIC_PREFIX) :]
        known = {node.name}
        distribution = distribution_of(node)
        if distribution is not None:
            known.update(distribution.peer_states())
        if target not in known:
            return Error({"reason": f"unknown node {target!r}"[:200]})
        self.target = target
        self.collector_name = self.assigns[COLLECTOR_ASSIGN]
        self._ask()
        send_after(REWATCH_INTERVAL, self_pid(), _REWATCH)
        return Ok({"node": target, "local": node.name})

    def _ask(self) -> None:
        # A name not registered here raises; a name on a node that is down is dropped.
        # Either way no collector answers, and the next _Rewatch asks again.
        with contextlib.suppress(ActorError):
            send((self.collector_name, self.target), Watch(self_pid()))

    async def handle_info(self, message: Any) -> NoReply | Stop | None:
        if isinstance(message, Snapshot):
            if message.node == self.target:
                data = message.data
                local = self.endpoint.node
                if self.target != local.name:  # the nodes as the page's own node sees them
                    data = {**data, "nodes": nodes_of(local)}
                self.push("snapshot", data)
        elif isinstance(message, Watching):
            if message.node == self.target and message.collector != self.collector:
                if self.collector_ref is not None:
                    demonitor(self.collector_ref, flush=True)
                self.collector = message.collector
                self.collector_ref = monitor(message.collector)
        elif isinstance(message, Down):
            if message.ref == self.collector_ref:
                self.collector = self.collector_ref = None
                self.push("collector_down", {"node": self.target, "reason": str(message.reason)[:200]})
        elif isinstance(message, _Rewatch):
            if self.collector is None:
                self._ask()
                self.push("nodes", {"nodes": nodes_of(self.endpoint.node)})
            send_after(REWATCH_INTERVAL, self_pid(), _REWATCH)
        return None

    async def handle_out(self, event: str, payload: Payload) -> NoReply:
        return NoReply()  # see `intercepts`

    async def handle_in(self, event: str, payload: Payload) -> Ok | Error | Reply | NoReply | Stop:
        if event not in ACTIONS:
            return Error({"reason": f"unknown event {event!r}"[:200]})
        pid = payload.get("pid") if isinstance(payload, dict) else None
        if not isinstance(pid, str):
            return Error({"reason": 'expected {"pid": "<0.42.0>"}'})
        if self.collector is None:
            return Error({"reason": f"the collector of {self.target} is not reachable"})
        try:
            result: ActionResult = await call(self.collector, ProcessAction(event, pid), timeout=ACTION_TIMEOUT)
        except ActorError as error:
            return Error({"reason": f"the collector of {self.target} did not answer: {type(error).__name__}"})
        if result.ok:
            return Ok(result.value)
        return Error({"reason": str(result.value)})

    async def terminate(self, reason: Any) -> None:
        if self.collector is not None:
            send(self.collector, Unwatch(self_pid()))


class DashboardSocket(Socket):
    """The dashboard's socket: routes ``dashboard:*`` to `DashboardChannel`. Mounted
    with ``check_origin="conn"``: only the page served by the same host can use it;
    ``connect`` refuses (403) a ``Host`` the dashboard does not answer under
    (`Dashboard.allows_host`: no DNS rebinding). A `Dashboard` mounts its own subclass,
    `bound` to it."""

    channels: ClassVar[dict[str, type[Channel]]] = {TOPIC_PREFIX + "*": DashboardChannel}
    max_channels: ClassVar[int] = 4
    dashboard: ClassVar[Dashboard | None] = None

    @classmethod
    def bound(cls, dashboard: Dashboard) -> type[DashboardSocket]:
        """This socket for ``dashboard`` (what `Dashboard` mounts)."""
        return type(cls.__name__, (cls,), {"dashboard": dashboard})

    async def connect(self, params: dict[str, Any], connect_info: ConnectInfo) -> bool:
        dashboard = self.dashboard
        if dashboard is None:  # the unbound class: only a wiring mistake mounts it
            raise DashboardError("mount the socket of a Dashboard: Dashboard(endpoint), not DashboardSocket itself")
        if not dashboard.allows_host(connect_info.header("host")):
            return False
        self.assigns[COLLECTOR_ASSIGN] = dashboard.collector_name
        return True


__all__ = ["DashboardChannel", "DashboardSocket"]
