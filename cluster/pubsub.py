"""The cluster adapter of PubSub: a broadcast crosses to every other node once.

phoenix_pubsub's PG2 adapter (docs/protocol.md §7.8) in alight: `PubSub.broadcast` calls
`ClusterAdapter.forward`, which queues ONE `PubSubForward` per other node up now, however
many subscribers the topic has there (the link then batches the messages of a loop turn
into one frame per peer). On arrival the receiving node dispatches it with
`PubSub.local_broadcast`: a `Broadcast` takes the fastlane there, encoded once per
serializer on that node. ``from_pid`` is not carried: the sender lives on the origin
node, where `broadcast_from` already excluded it (Phoenix forwards ``:none`` too).

Several endpoints may share one node: each forward names its PubSub
(``PubSubForward.pubsub``), and one router per `Distribution` hands it to the PubSub of
that name.
A forward for a PubSub this node does not run (yet) is dropped and counted
(`ClusterAdapter.unroutable`), as a message to an unknown registered name is dropped.

Delivery is what the link gives: in order per pair of nodes, lost (and counted in
`DistributionStatistics.links`) only when a peer's queue is over its bound or the node
is not connected, as Erlang drops messages to a node that is down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..actors import Pid
from ..channels.pubsub import LocalAdapter, PubSub
from ._codec import PubSubForward

if TYPE_CHECKING:
    from .distribution import Distribution

__all__ = ["ClusterAdapter", "ClusterPubSubStats"]

log = logging.getLogger("alight.cluster.pubsub")


@dataclass(slots=True)
class ClusterPubSubStats:
    """Counters of a `ClusterAdapter` (``adapter.stats``)."""

    forwarded: int = 0
    """Broadcasts handed to the link, one per destination node."""
    received: int = 0
    """Broadcasts received from other nodes and dispatched here."""
    direct: int = 0
    """`direct` broadcasts handed to the link."""
    unreachable: int = 0
    """`direct` broadcasts to a node that is not connected (dropped)."""
    not_forwarded: dict[str, int] = field(default_factory=dict)
    """Broadcasts not sent to a known node because it was not up then, by node: what
    its subscribers miss while the link is down (none are replayed, as in Phoenix)."""


class ClusterAdapter:
    """The PubSub `Adapter` over a `Distribution` (see the module docstring).

    ``ClusterAdapter(distribution, pubsub)`` installs itself as ``pubsub.adapter`` and
    registers with the distribution's router; `detach` undoes both. The endpoint does
    this on its own when it starts on a node whose ``remote`` is a `Distribution`.
    """

    def __init__(self, distribution: Distribution, pubsub: PubSub) -> None:
        self.distribution = distribution
        self.pubsub = pubsub
        self.stats = ClusterPubSubStats()
        _router(distribution).adapters[pubsub.name] = self
        pubsub.adapter = self

    def forward(self, topic: str, message: Any, from_pid: Pid | None) -> None:
        """Queue one `PubSubForward` for every other node up now; count the known nodes
        that are not up (`ClusterPubSubStats.not_forwarded`)."""
        distribution = self.distribution
        sent = distribution.forward_all(PubSubForward(topic, message, None, self.pubsub.name))
        self.stats.forwarded += sent
        if sent < distribution.known_peers():
            missed = self.stats.not_forwarded
            for name, state in distribution.peer_states().items():
                if state != "up":
                    missed[name] = missed.get(name, 0) + 1

    def direct(self, node_name: str, topic: str, message: Any) -> None:
        """Queue one `PubSubForward` for ``node_name`` (dropped if it is not up)."""
        if self.distribution.forward_to(node_name, PubSubForward(topic, message, None, self.pubsub.name)):
            self.stats.direct += 1
        else:
            self.stats.unreachable += 1

    def receive(self, topic: str, message: Any) -> None:
        """A broadcast from another node: dispatch it to this node's subscribers."""
        self.stats.received += 1
        self.pubsub.local_broadcast(topic, message)

    @property
    def unroutable(self) -> int:
        """Forwards that reached this node for a PubSub it does not run (dropped)."""
        return _router(self.distribution).unroutable

    def detach(self) -> None:
        """Stop forwarding and receiving (the PubSub goes back to a `LocalAdapter`)."""
        router = _router(self.distribution)
        if router.adapters.get(self.pubsub.name) is self:
            del router.adapters[self.pubsub.name]
        if self.pubsub.adapter is self:
            self.pubsub.adapter = LocalAdapter()


class _Router:
    """``distribution.on_pubsub``: hands each forward to the PubSub it names."""

    __slots__ = ("adapters", "unroutable")

    def __init__(self) -> None:
        self.adapters: dict[str, ClusterAdapter] = {}
        self.unroutable = 0

    def __call__(self, forward: PubSubForward) -> None:
        adapter = self.adapters.get(forward.pubsub)
        if adapter is None:
            self.unroutable += 1
            log.debug("cluster: dropped a broadcast on %r for an unknown PubSub", forward.topic)
            return
        adapter.stats.received += 1
        adapter.pubsub.local_broadcast(forward.topic, forward.message)


def _router(distribution: Distribution) -> _Router:
    router = distribution.on_pubsub
    if not isinstance(router, _Router):
        router = _Router()
        distribution.on_pubsub = router
    return router
