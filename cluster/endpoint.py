"""An endpoint on a clustered node: PubSub, presence and long-poll cluster-wide.

`Endpoint` calls `attach_cluster` by itself when it starts on a node whose ``remote``
is a `Distribution` (start the distribution first; ``alight node`` and ``alight cluster
start`` do). Nothing else is needed; the app code is the same as on a single node:

- PubSub uses the `ClusterAdapter`: every broadcast (channel ``broadcast``,
  ``Endpoint.broadcast``, the ``"disconnect"`` broadcast to a socket id) reaches the
  subscribers of every node, crossing to each other node once;
- the presence tracker (if any) replicates with the same-named tracker of the other
  nodes through a `ClusterReplicator`, with the cluster timing (`CLUSTER_TRACKER_SETTINGS`,
  unless the `Presence` was given tuned ``settings``);
- long-poll sessions are found through PubSub from any node, which needs every node to
  sign and verify the same session tokens: an endpoint without a configured
  ``secret_key_base`` gets one derived from the cluster secret
  (`Distribution.derive_secret`), so the nodes of a cluster agree on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..actors import ChildSpec
from .distribution import Distribution
from .presence import ClusterReplicator, cluster_settings
from .pubsub import ClusterAdapter

if TYPE_CHECKING:
    from ..channels.endpoint import Endpoint

__all__ = ["attach_cluster"]


def attach_cluster(endpoint: Endpoint, distribution: Distribution) -> list[ChildSpec]:
    """Make the starting ``endpoint`` cluster-wide over ``distribution`` (module doc).

    Called by the endpoint while it starts, after its PubSub exists and before its
    presence shards start; returns the child specs to start before the presence (the
    replication relays). Raises `ChannelError` if the endpoint is not starting."""
    ClusterAdapter(distribution, endpoint.pubsub)
    if endpoint.secret_key_generated:
        endpoint.secret_key_base = distribution.derive_secret(f"endpoint:{endpoint.name}")
    presence = endpoint.presence
    if presence is None:
        return []
    tracker = presence.tracker
    replicator = ClusterReplicator(distribution, tracker)
    tracker.replicator = replicator  # before the settings: permdown_on_shutdown needs it
    tracker.settings = cluster_settings(tracker.settings)
    return [replicator.child_spec()]
