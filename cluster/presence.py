"""Presence replication over the distribution: the tracker's `Replicator` for a cluster.

Phoenix.Tracker's shards talk to the same-named shard on every other node (docs/protocol.md
§7.4-7.5). Here each message travels as a cluster `Forward` to a registered *service*
per shard, ``alight.tracker:<shard name>``: a small relay process on the receiving node
(`ClusterReplicator.child_spec` starts one per shard) hands it to `Tracker.deliver`.

- `publish` (heartbeats with their delta) and `graceful_permdown` go to every other node
  up now, once each (Phoenix's ``broadcast_from`` on the shard topic);
- `transfer_req` / `transfer_ack` go to one node only: the replica's name *is* its
  node's name (the tracker's default ``replica_name``), its ``vsn`` tells incarnations
  apart.

A message to a node that is not connected is dropped and counted (`ReplicatorStats`):
the CRDT tolerates loss, and the next heartbeat's clocks trigger a transfer that repairs
any gap.

Cluster timing (`CLUSTER_TRACKER_SETTINGS`): Phoenix's defaults take 30 s to notice a
dead node. A cluster endpoint uses ``broadcast_period`` 0.5 s, an empty heartbeat at
least every 1.5 s (``max_silent_periods`` 2), ``down_period`` 3 s and ``permdown_period``
10 min, with ``permdown_on_shutdown``. ``down_period`` counts from the heartbeat that was
due (1.5 s after the last one, `ReplicaTable`): a killed node's presences leave every
other node within ``1.5 + down_period + broadcast_period`` (5 s) of its last heartbeat,
and a node paused for less than ``down_period`` is never taken for down (no client sees
a diff for it). Once a paused node resumes its presences return with its first
heartbeat after the link is back (it sends one at once), and it does not take the
others for down for the time it was not running itself. The trade-off: a pause longer
than ~3 s (SIGSTOP, swapping, a long GC, a blocked loop) *is* a failure — that node's
presences leave everywhere, then come back. To tolerate longer pauses raise
``down_period`` (and `Distribution` ``down_after``) together: detection slows by as
much. Give the `Presence` explicit ``settings`` to choose; the cluster timing replaces
only the untouched Phoenix defaults.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..actors import ChildSpec, Pid, Supervisor, receive, register, spawn_link
from ..channels.presence.lowlevel import (
    GracefulPermdown,
    Heartbeat,
    Replica,
    ReplicaMessage,
    TransferAck,
    TransferReq,
)
from ..channels.presence.tracker import PermdownReplicator, Tracker, TrackerSettings
from ._codec import Forward

if TYPE_CHECKING:
    from .distribution import Distribution

__all__ = [
    "CLUSTER_TRACKER_SETTINGS",
    "ClusterReplicator",
    "ReplicatorStats",
    "cluster_settings",
    "replicate_through",
    "service_name",
]

log = logging.getLogger("alight.cluster.presence")

CLUSTER_TRACKER_SETTINGS = TrackerSettings(
    broadcast_period=0.5,
    max_silent_periods=2,
    down_period=3.0,
    permdown_period=600.0,
    permdown_on_shutdown=True,
).validated()
"""The tracker timing of a cluster endpoint (see the module docstring)."""


_TIMING = (
    "broadcast_period",
    "max_silent_periods",
    "down_period",
    "permdown_period",
    "clock_sample_periods",
    "permdown_on_shutdown",
)


def service_name(shard: str) -> str:
    """The registered name of the relay of tracker shard ``shard`` on every node."""
    return f"alight.tracker:{shard}"


def replicate_through(tracker: Tracker, replicator: PermdownReplicator) -> None:
    """Make ``tracker`` replicate through ``replicator`` with the cluster timing
    (`cluster_settings`): what the mesh and a broker both do to an endpoint's presence.
    The replicator first: ``permdown_on_shutdown`` needs one that can announce it."""
    tracker.replicator = replicator
    tracker.settings = cluster_settings(tracker.settings)


def cluster_settings(settings: TrackerSettings) -> TrackerSettings:
    """``settings`` if their timing was tuned, else `CLUSTER_TRACKER_SETTINGS`'s timing
    (``pool_size``, ``diff_period`` and ``max_delta_sizes`` kept): Phoenix's 30 s
    defaults are replaced only when nobody chose them on purpose."""
    defaults = TrackerSettings().validated()
    if any(getattr(settings, f) != getattr(defaults, f) for f in _TIMING):
        return settings
    return dataclasses.replace(
        CLUSTER_TRACKER_SETTINGS,
        pool_size=settings.pool_size,
        diff_period=settings.diff_period,
        max_delta_sizes=settings.max_delta_sizes,
    ).validated()


@dataclass(slots=True)
class ReplicatorStats:
    """Counters of a `ClusterReplicator` (messages handed to the link / received)."""

    heartbeats: int = 0
    """Heartbeats sent (one per destination node)."""
    transfers: int = 0
    """Transfer requests and acks sent."""
    permdowns: int = 0
    """Graceful permdowns sent (one per destination node)."""
    unreachable: int = 0
    """Transfers to a node that is not connected (dropped; heartbeats repair it)."""
    received: int = 0
    """Messages from other nodes handed to the tracker."""


class ClusterReplicator:
    """The `PermdownReplicator` of ``tracker`` over ``distribution`` (module docstring).

    Start `child_spec` (the relays) before the tracker's shards; the endpoint does both
    when it starts on a clustered node.
    """

    def __init__(self, distribution: Distribution, tracker: Tracker) -> None:
        self.distribution = distribution
        self.tracker = tracker
        self.stats = ReplicatorStats()

    # -- Replicator ------------------------------------------------------------------

    def publish(self, heartbeat: Heartbeat) -> None:
        sent = self.distribution.forward_all(Forward(service_name(heartbeat.shard), heartbeat))
        self.stats.heartbeats += sent

    def transfer_req(self, shard: str, to: Replica, ref: int, request: TransferReq) -> None:
        self._direct(shard, to, request)

    def transfer_ack(self, shard: str, to: Replica, ref: int, ack: TransferAck) -> None:
        self._direct(shard, to, ack)

    def graceful_permdown(self, message: GracefulPermdown) -> None:
        self.stats.permdowns += self.distribution.forward_all(Forward(service_name(message.shard), message))

    def _direct(self, shard: str, to: Replica, message: ReplicaMessage) -> None:
        if self.distribution.forward_to(to.name, Forward(service_name(shard), message)):
            self.stats.transfers += 1
        else:
            self.stats.unreachable += 1

    # -- the relays ------------------------------------------------------------------

    def child_spec(self) -> ChildSpec:
        """A one_for_one supervisor of one relay per shard, each registered under
        `service_name`, handing what arrives to `Tracker.deliver`."""
        replicator = self
        names = [service_name(self.tracker.shard_name(i)) for i in range(self.tracker.settings.pool_size)]

        def relay_spec(name: str) -> ChildSpec:
            async def start() -> Pid:
                return spawn_link(replicator._relay, name)

            return ChildSpec(id=name, start=start)

        async def start() -> Pid:
            return await Supervisor.start_link([relay_spec(n) for n in names], strategy="one_for_one", name=None)

        return ChildSpec(id=("replicator", self.tracker.name), start=start, type="supervisor", shutdown="infinity")

    async def _relay(self, name: str) -> None:
        register(name)
        deliver = self.tracker.deliver
        stats = self.stats
        while True:
            message: Any = await receive()
            if isinstance(message, Heartbeat | TransferReq | TransferAck | GracefulPermdown):
                stats.received += 1
                deliver(message)
            else:
                log.warning("cluster: %s dropped an unexpected message %r", name, type(message))
