"""alight.cluster: nodes linked by ZeroMQ, as Erlang distribution links BEAM nodes.

A `Distribution` attached to a `Node` joins the cluster through seed addresses and
learns the rest of the members (a full mesh); pids of other nodes then work as local
ones do: `send`, links and monitors (``noconnection`` when a node goes down),
registered names (``send((name, node), msg)``), `spawn_on`. `nodes`,
`monitor_node` and `monitor_nodes` (`Nodeup` / `Nodedown` messages) watch membership.

Links are authenticated and encrypted with CurveZMQ, with keys derived from the
cluster secret (``ALIGHT_CLUSTER_SECRET`` or a key file, `load_keys`): a node with the
secret is trusted, as with Erlang's cookie, and nothing from a peer is decoded before
it has authenticated. Every exception derives from `ClusterError`.

An `Endpoint` started on a node with a `Distribution` is cluster-wide by itself (the
distribution extends it with a `ClusterExtension`): PubSub forwards each broadcast to every other node once
(`ClusterAdapter`), presence replicates (`ClusterReplicator`, with the cluster timing
`CLUSTER_TRACKER_SETTINGS`: a dead node's presences leave within 5 s) and long-poll
sessions are served by any node.

Nodes that cannot reach each other can share a Redis or Valkey server instead:
`alight.cluster.redis.RedisPubSub`, an endpoint extension (the ``redis`` extra; not
imported here, so the mesh needs no Redis client).
"""

from ._keys import ENV_VAR, ClusterKeys, derive_keys, fingerprint, load_keys, load_secret
from .discovery import Discovery, DnsPoll, Seeds, parse_discovery
from .distribution import (
    Distribution,
    DistributionStatistics,
    Nodedown,
    Nodeup,
    distribution,
    distribution_of,
    monitor_node,
    monitor_nodes,
    nodes,
    spawn_on,
)
from .endpoint import ClusterExtension
from .errors import (
    AddressError,
    BadSecret,
    BatchEncodeError,
    ClusterError,
    ClusterFrameError,
    DiscoveryError,
    NodeDown,
    NotConnected,
    UnpicklableReason,
)
from .presence import CLUSTER_TRACKER_SETTINGS, ClusterReplicator
from .pubsub import ClusterAdapter

__all__ = [
    "CLUSTER_TRACKER_SETTINGS",
    "ENV_VAR",
    "AddressError",
    "BadSecret",
    "ClusterAdapter",
    "ClusterError",
    "ClusterExtension",
    "ClusterKeys",
    "ClusterReplicator",
    "Discovery",
    "DiscoveryError",
    "DnsPoll",
    "Seeds",
    "Distribution",
    "DistributionStatistics",
    "BatchEncodeError",
    "ClusterFrameError",
    "NodeDown",
    "Nodedown",
    "Nodeup",
    "NotConnected",
    "UnpicklableReason",
    "derive_keys",
    "distribution",
    "distribution_of",
    "fingerprint",
    "load_keys",
    "load_secret",
    "monitor_node",
    "monitor_nodes",
    "nodes",
    "parse_discovery",
    "spawn_on",
]
