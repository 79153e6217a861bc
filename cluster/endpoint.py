"""An endpoint on a clustered node: PubSub, presence and long-poll cluster-wide.

A `Distribution` is an `EndpointAttachment`: every `Endpoint` that starts on its node
gets a `ClusterExtension` (start the distribution first; ``alight node`` and ``alight
cluster start`` do). Nothing else is needed; the app code is the same as on a single
node:

- PubSub uses the `ClusterAdapter`: every broadcast (channel ``broadcast``,
  ``Endpoint.broadcast``, the ``"disconnect"`` broadcast to a socket id) reaches the
  subscribers of every node, crossing to each other node once;
- the presence tracker (if any) replicates with the same-named tracker of the other
  nodes through a `ClusterReplicator`, with the cluster timing (`CLUSTER_TRACKER_SETTINGS`,
  unless the `Presence` was given tuned ``settings``);
- long-poll sessions are found through PubSub from any node, which needs every node to
  sign and verify the same session tokens: an endpoint without a configured
  ``secret_key_base`` gets one derived from the cluster secret
  (`Distribution.derive_secret`), so the nodes of a cluster agree on it;
- ``GET /_alight/cluster`` answers ``{"cluster": FINGERPRINT}`` (16 hex digits of the
  cluster's public key): a node about to share a port (``--reuse-port``) asks it first,
  and refuses to start beside another cluster's nodes, whose clients it would split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson

from ..actors import ChildSpec
from ..channels.extension import Extension, Phase
from ..transports.http import HttpRequest, HttpResponse
from .presence import ClusterReplicator, replicate_through
from .pubsub import ClusterAdapter

if TYPE_CHECKING:
    from ..channels.endpoint import Endpoint
    from .distribution import Distribution

__all__ = ["CLUSTER_PATH", "ClusterExtension"]

CLUSTER_PATH = "/_alight/cluster"


class ClusterExtension(Extension):
    """Makes the starting endpoint cluster-wide over ``distribution`` (module doc).

    In `Phase.CLUSTER`: after the endpoint's PubSub exists and before its presence
    starts, so that presence starts replicating; its children are the replication
    relays."""

    phase = Phase.CLUSTER

    def __init__(self, distribution: Distribution) -> None:
        self.distribution = distribution

    async def handle_http(self, endpoint: Endpoint, request: HttpRequest) -> HttpResponse | None:
        if request.path != CLUSTER_PATH or request.method != "GET":
            return None
        body = orjson.dumps({"cluster": self.distribution.fingerprint, "node": self.distribution.node.name})
        return HttpResponse(200, (("content-type", "application/json"),), body)

    def child_specs(self, endpoint: Endpoint) -> Sequence[ChildSpec]:
        distribution = self.distribution
        ClusterAdapter(distribution, endpoint.pubsub)
        if endpoint.secret_key_generated:
            endpoint.secret_key_base = distribution.derive_secret(f"endpoint:{endpoint.name}")
        presence = endpoint.presence
        if presence is None:
            return []
        replicator = ClusterReplicator(distribution, presence.tracker)
        replicate_through(presence.tracker, replicator)
        return [replicator.child_spec()]
