"""What a presence `Replicator` carries between nodes, for replicators of other packages
(the cluster's `ClusterReplicator`) and of your own.

A replicator moves `ReplicaMessage` values — `Heartbeat` (a shard's clock and the
deltas since the last one), `TransferReq` / `TransferAck` (a full state on request),
`GracefulPermdown` (a shard leaving for good) — between same-named trackers of other
nodes, and names replicas by `Replica` (node name and creation). Their meaning is in
`alight.channels.presence.tracker`.
"""

from __future__ import annotations

from ._replication import GracefulPermdown, Heartbeat, ReplicaMessage, TransferAck, TransferReq
from ._state import Replica

__all__ = ["GracefulPermdown", "Heartbeat", "Replica", "ReplicaMessage", "TransferAck", "TransferReq"]
