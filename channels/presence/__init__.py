"""Phoenix Presence for alight: who is in a topic, on every node, replicated by a delta-CRDT tracker.

docs/protocol.md §6 and §7. ``_state`` is the pure tracker state (Phoenix.Tracker.State); the tracker
processes and the Presence API are built around it.
"""

from .presence import Presence, Presences
from .tracker import (
    AlreadyTracked,
    Heartbeat,
    InvalidSettings,
    LocalReplicator,
    NoPresence,
    Replicator,
    Tracker,
    TrackerError,
    TrackerSettings,
)

__all__ = [
    "AlreadyTracked",
    "Heartbeat",
    "InvalidSettings",
    "LocalReplicator",
    "NoPresence",
    "Presence",
    "Presences",
    "Replicator",
    "Tracker",
    "TrackerError",
    "TrackerSettings",
]
