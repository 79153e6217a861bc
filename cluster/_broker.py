"""What a node tracks of the other nodes it hears through a broker: sequence numbers.

Pure: no I/O, no clock. A broker's publish/subscribe (Redis, Valkey) delivers a message
to whoever is subscribed at that instant and forgets it, so a node that was cut off from
the broker misses what was published meanwhile, and nothing tells it. Every message a
node publishes therefore carries its sender (node name and creation) and a sequence
number per stream (``"all"``: to every node; ``"direct"``: to one node, numbered per
destination), and `Receiver.accept` reads the stream as TCP reads its bytes:

- the next number: deliver;
- a number past the next: deliver, and count the numbers skipped as **lost** (messages
  published that this node never received: it was disconnected, or the sender dropped
  them while the broker was away);
- a number already seen: a **replay** (a duplicate, or a recorded frame sent again):
  dropped — a frame's signature stops forgery, not replay;
- an older creation of a node heard from in a newer one: **conflict** — two live nodes
  share a name (or a restarted node's old process still runs); dropped and reported;
- the node's own messages (the broker echoes them back): ignored; another creation
  under this node's own name is a conflict too.

The first message of a sender (or of a new creation) is delivered without judging what
came before: this node was not listening then. The table holds one entry per sender and
stream, as many as the cluster has nodes (senders must hold the cluster secret).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

__all__ = ["BrokerStats", "Receiver", "Sequencer", "Stream", "Verdict"]

Stream: TypeAlias = Literal["all", "direct"]
Verdict: TypeAlias = Literal["deliver", "own", "replay", "conflict"]


@dataclass(slots=True)
class BrokerStats:
    """Counters of a broker adapter (``adapter.stats``); every loss has one."""

    forwarded: int = 0
    """PubSub broadcasts queued for the broker (one per broadcast, whatever the number
    of nodes; as `ClusterPubSubStats.forwarded` counts one per node)."""
    received: int = 0
    """PubSub broadcasts of other nodes dispatched here."""
    replicated: int = 0
    """Presence messages queued for the broker (heartbeats, transfers, permdowns)."""
    replicas_received: int = 0
    """Presence messages of other nodes handed to the tracker here."""
    published: int = 0
    """Frames the broker accepted (broadcasts and presence messages)."""
    dropped: int = 0
    """Messages not published: the broker was unreachable or slow, or the queue to it
    was full (`RedisPubSub.max_queue`). Other nodes count them as ``lost`` too."""
    lost: int = 0
    """Messages of other nodes that never arrived here (gaps in their sequences)."""
    rejected: int = 0
    """Frames read from the broker that were not ours: bad signature (another secret,
    or forged), over the size bound, or undecodable. Dropped unread."""
    replayed: int = 0
    """Frames with a sequence number already seen (duplicates or replays): dropped."""
    conflicts: int = 0
    """Messages from a second live node of the same name: dropped (see the log)."""
    unencodable: int = 0
    """Presence messages that could not be encoded (a meta that is not data): logged."""
    disconnects: int = 0
    """Times the connection to the broker was lost (or could not be made)."""
    unroutable: int = 0
    """Messages of a known kind for something this node does not run (e.g. presence
    messages for an endpoint without presence): dropped."""
    by_node: dict[str, int] = field(default_factory=dict)
    """Messages (of both kinds) received, by sending node."""


class Sequencer:
    """Numbers what this node publishes: one sequence for ``"all"``, one per destination
    of ``"direct"`` messages (each receiver sees only its own)."""

    __slots__ = ("_all", "_direct")

    def __init__(self) -> None:
        self._all = 0
        self._direct: dict[str, int] = {}

    def next_all(self) -> int:
        self._all += 1
        return self._all

    def next_direct(self, node: str) -> int:
        seq = self._direct.get(node, 0) + 1
        self._direct[node] = seq
        return seq


class Receiver:
    """Judges each arriving message by its sender and number (module docstring)."""

    __slots__ = ("_last", "creation", "name")

    def __init__(self, name: str, creation: int) -> None:
        self.name = name
        self.creation = creation
        # (sender, stream) -> (creation, last sequence number)
        self._last: dict[tuple[str, Stream], tuple[int, int]] = {}

    def accept(self, sender: str, creation: int, stream: Stream, seq: int, stats: BrokerStats) -> Verdict:
        """The verdict on message ``seq`` of ``stream`` from ``sender`` (``creation``);
        counts ``lost``, ``replayed`` and ``conflicts`` in ``stats``."""
        if sender == self.name:
            if creation == self.creation:
                return "own"
            stats.conflicts += 1
            return "conflict"
        key = (sender, stream)
        last = self._last.get(key)
        if last is None or creation > last[0]:
            self._last[key] = (creation, seq)
            return "deliver"
        if creation < last[0]:
            stats.conflicts += 1
            return "conflict"
        if seq <= last[1]:
            stats.replayed += 1
            return "replay"
        stats.lost += seq - last[1] - 1
        self._last[key] = (creation, seq)
        return "deliver"

    def forget(self, sender: str) -> None:
        """Drop what is known of ``sender`` (both streams)."""
        self._last.pop((sender, "all"), None)
        self._last.pop((sender, "direct"), None)
