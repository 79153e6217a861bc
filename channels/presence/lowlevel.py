"""What a presence `Replicator` carries between nodes, for replicators of other packages
(the cluster's `ClusterReplicator`) and of your own.

A replicator moves `ReplicaMessage` values — `Heartbeat` (a shard's clock and the
deltas since the last one), `TransferReq` / `TransferAck` (a full state on request),
`GracefulPermdown` (a shard leaving for good) — between same-named trackers of other
nodes, and names replicas by `Replica` (node name and creation). Their meaning is in
`alight.channels.presence.tracker`. A replicator that may not pickle (a broker) turns
states and deltas into plain data with `state_to_data` and back with `state_from_data`.
"""

from __future__ import annotations

from ._replication import GracefulPermdown, Heartbeat, ReplicaMessage, TransferAck, TransferReq
from ._state import Delta, Replica, State
from ._wire import from_data as state_from_data
from ._wire import to_data as state_to_data

__all__ = [
    "Delta",
    "GracefulPermdown",
    "Heartbeat",
    "Replica",
    "ReplicaMessage",
    "State",
    "TransferAck",
    "TransferReq",
    "state_from_data",
    "state_to_data",
]
