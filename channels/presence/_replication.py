"""What tracker shards tell each other, and the replica up/down state machine.

docs/protocol.md §7.4-7.5 in code, pure like ``_state``: no asyncio, no clock (every call that
needs the time takes ``now``). The shard's core (`_shard.ShardCore`) feeds it heartbeats
and ticks and applies what comes back to its `State`.

- The **messages** (frozen dataclasses) are phoenix_pubsub's ``{:pub, ...}`` tuples: a
  `Heartbeat` and a `GracefulPermdown` go to every other replica of the shard, a
  `TransferReq` and its `TransferAck` to one replica. ``replica`` is always the sender.
- `ReplicaTable` is Phoenix.Tracker.Replica: one entry per replica *name*, so a heartbeat
  from a known name with a new ``vsn`` (the node restarted) takes the old incarnation down
  and permdown before the new one comes up.
- `ClockSampler` is the shard's ``pending_clockset``: the clocks heard since the last sample,
  reduced to the replicas that have seen something this one has not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias, runtime_checkable

from ._state import Delta, Replica, State, Status

__all__ = [
    "ClockSampler",
    "GracefulPermdown",
    "Heartbeat",
    "LocalReplicator",
    "PermdownReplicator",
    "ReplicaMessage",
    "ReplicaTable",
    "Replicator",
    "TransferAck",
    "TransferReq",
    "Transition",
    "clocks_to_sync",
]

Clocks: TypeAlias = dict[Replica, int]


# -- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """``{:pub, :heartbeat, replica, delta | :empty, clocks}``, to every other replica.

    ``delta`` is None for an empty heartbeat; ``clocks`` is the sender's context without
    its down replicas (`State.clocks`).
    """

    shard: str
    replica: Replica
    delta: Delta | None
    clocks: Clocks


@dataclass(frozen=True, slots=True)
class TransferReq:
    """``{:pub, :transfer_req, ref, replica, clocks}``: "send me what I have not seen".

    Sent to one replica, which answers a `TransferAck` with the same ``ref``.
    """

    shard: str
    ref: int
    replica: Replica
    clocks: Clocks


@dataclass(frozen=True, slots=True)
class TransferAck:
    """``{:pub, :transfer_ack, ref, replica, state}``: the answer to a `TransferReq`.

    ``state`` is a delta generation or the full state, extracted for the requester.
    """

    shard: str
    ref: int
    replica: Replica
    state: State | Delta


@dataclass(frozen=True, slots=True)
class GracefulPermdown:
    """``{:pub, :graceful_permdown, replica}``: the sender stops for good (its shard shut
    down with ``permdown_on_shutdown``); receivers drop its presences at once."""

    shard: str
    replica: Replica


ReplicaMessage: TypeAlias = Heartbeat | TransferReq | TransferAck | GracefulPermdown
"""Everything one shard sends another; `Tracker.deliver` takes any of them."""


# -- how messages travel ----------------------------------------------------------------------


class Replicator(Protocol):
    """How a shard reaches the same-named shard of the other replicas.

    The cluster package implements it; what arrives on the other side goes to that
    node's `Tracker.deliver`, which sends it to the shard's mailbox. Messages may be
    lost, duplicated, delayed or reordered: heartbeats carry clocks, and the shards
    repair any gap with a transfer (docs/protocol.md §7.4). Called in the shard process;
    must not block. ``shard`` and ``ref`` repeat the message's fields, so a router
    need not look inside it.
    """

    def publish(self, heartbeat: Heartbeat) -> None:
        """Deliver ``heartbeat`` to every other replica's shard ``heartbeat.shard``
        (Phoenix's ``broadcast_from`` on the shard topic)."""

    def transfer_req(self, shard: str, to: Replica, ref: int, request: TransferReq) -> None:
        """Deliver ``request`` to replica ``to`` only (``direct_broadcast`` to its
        node); it answers with a `TransferAck` through its own `transfer_ack`."""

    def transfer_ack(self, shard: str, to: Replica, ref: int, ack: TransferAck) -> None:
        """Deliver ``ack`` (the answer to a `TransferReq` from ``to``) to ``to`` only."""


@runtime_checkable
class PermdownReplicator(Replicator, Protocol):
    """A `Replicator` that can also announce a graceful permdown (required with
    ``permdown_on_shutdown``)."""

    def graceful_permdown(self, message: GracefulPermdown) -> None:
        """Deliver ``message`` to every other replica's shard ``message.shard``."""


class LocalReplicator:
    """A node alone: there are no other replicas, so nothing is delivered."""

    def __init__(self) -> None:
        self.published = 0
        """Heartbeats published (for tests and statistics)."""

    def publish(self, heartbeat: Heartbeat) -> None:
        self.published += 1

    def transfer_req(self, shard: str, to: Replica, ref: int, request: TransferReq) -> None:
        return None

    def transfer_ack(self, shard: str, to: Replica, ref: int, ack: TransferAck) -> None:
        return None

    def graceful_permdown(self, message: GracefulPermdown) -> None:
        return None


# -- replica status ----------------------------------------------------------------------------

Transition: TypeAlias = tuple[Literal["up", "down", "permdown"], Replica]
"""What the shard applies to its state, in order: ``up`` (`State.replica_up`, values join),
``down`` (`State.replica_down`, values leave), ``permdown`` (`State.remove_down_replicas`)."""


@dataclass(slots=True)
class _Known:
    replica: Replica
    status: Status
    last_heartbeat: float


class ReplicaTable:
    """The other replicas of one shard, by name (Phoenix.Tracker.Replica).

    ``down_period``/``permdown_period`` are seconds of silence (the validated settings),
    counted from when the next heartbeat was due: ``heartbeat_interval`` after the last
    one (a replica with nothing new sends an empty heartbeat only every
    ``max_silent_periods + 1`` ticks). So a replica that pauses for less than
    ``down_period`` is never taken for down, whenever in its heartbeat cycle the pause
    falls (Phoenix counts from the last heartbeat, so a pause shorter than
    ``down_period`` can still take a replica down there).
    Every method returns the transitions to apply, in order.
    """

    __slots__ = ("_gone", "_known", "down_period", "heartbeat_interval", "permdown_period")

    GONE_LIMIT = 1024
    """Gracefully permdown replicas remembered (oldest forgotten first), so that a late or
    duplicated heartbeat of theirs cannot bring them back with their presences."""

    def __init__(self, down_period: float, permdown_period: float, heartbeat_interval: float = 0.0) -> None:
        self.down_period = down_period
        self.permdown_period = permdown_period
        self.heartbeat_interval = heartbeat_interval
        self._known: dict[str, _Known] = {}
        self._gone: dict[Replica, None] = {}

    def status(self, replica: Replica) -> Status | None:
        """``"up"``/``"down"`` for a known incarnation, None otherwise."""
        known = self._known.get(replica.name)
        return known.status if known is not None and known.replica == replica else None

    def replicas(self, status: Status | None = None) -> list[Replica]:
        """Known replicas (only those with ``status`` if given)."""
        return [k.replica for k in self._known.values() if status is None or k.status == status]

    def heartbeat(self, replica: Replica, now: float) -> list[Transition]:
        """A heartbeat from ``replica`` at ``now`` (docs/protocol.md §7.5 transitions).

        Unknown name: up. Same vsn: refresh, and up again if it was down. New vsn (the node
        restarted): the old incarnation goes down (if up) and permdown, the new one up.
        Ignored (``[]``, and `status` stays None) for a gracefully permdown replica or an
        older vsn than the known one.
        """
        known = self._known.get(replica.name)
        if replica in self._gone or (known is not None and replica.vsn < known.replica.vsn):
            # Gone for good, or an older incarnation's late heartbeat (vsns grow with
            # time): Phoenix would flip back to it and bring back its presences.
            return []
        self._known[replica.name] = _Known(replica, "up", now)
        if known is None:
            return [("up", replica)]
        if known.replica == replica:
            return [] if known.status == "up" else [("up", replica)]
        old = known.replica
        down: list[Transition] = [("down", old)] if known.status == "up" else []
        return [*down, ("permdown", old), ("up", replica)]

    def graceful_permdown(self, replica: Replica) -> list[Transition]:
        """``replica`` announced it stops for good: down (if up) and permdown now.

        Later heartbeats of ``replica`` are ignored. Nothing else happens unless it is the
        incarnation known here (a late announcement of an older incarnation must not take
        down its successor).
        """
        self._gone[replica] = None
        if len(self._gone) > self.GONE_LIMIT:
            del self._gone[next(iter(self._gone))]
        known = self._known.get(replica.name)
        if known is None or known.replica != replica:
            return []
        del self._known[replica.name]
        down: list[Transition] = [("down", replica)] if known.status == "up" else []
        return [*down, ("permdown", replica)]

    def excuse(self, seconds: float, now: float) -> None:
        """This shard was not running for about ``seconds`` before ``now`` (paused, or
        its loop blocked): that time is not silence of any replica, so it is taken off
        everyone's (a replica is never counted as heard after ``now``)."""
        for known in self._known.values():
            known.last_heartbeat = min(known.last_heartbeat + seconds, now)

    def detect_down(self, now: float) -> list[Transition]:
        """Step 3 of §7.4: silent for more than ``permdown_period`` -> (down, then)
        permdown and forgotten; for more than ``down_period`` -> down."""
        out: list[Transition] = []
        for name, known in list(self._known.items()):
            silent = now - known.last_heartbeat - self.heartbeat_interval
            if silent > self.permdown_period:
                if known.status == "up":
                    out.append(("down", known.replica))
                out.append(("permdown", known.replica))
                del self._known[name]
            elif silent > self.down_period and known.status == "up":
                known.status = "down"
                out.append(("down", known.replica))
        return out


# -- clock sampling ----------------------------------------------------------------------------


def _dominates(c1: Mapping[Replica, int], c2: Mapping[Replica, int]) -> bool:
    """Phoenix's ``Clock.dominates?``: every entry of either is ≥ in ``c1`` (missing = 0)."""
    return all(c1.get(r, 0) >= c for r, c in c2.items())


def clocks_to_sync(own: Mapping[Replica, int], heard: Mapping[Replica, Mapping[Replica, int]]) -> list[Replica]:
    """The replicas to ask for a transfer: those whose clock (restricted to the replicas
    ``own`` knows; the others' values would be ignored by the merge anyway) is neither
    dominated by ``own`` nor by another heard clock (Phoenix's ``append_clock`` over the
    pending clockset plus our own, then ``clockset_replicas`` without us). Of equal clocks
    the first heard is kept, so one transfer covers them."""
    restricted = [(r, {k: c for k, c in clock.items() if k in own}) for r, clock in heard.items()]
    candidates = [(r, c) for r, c in restricted if not _dominates(own, c)]
    out = []
    for i, (replica, clock) in enumerate(candidates):
        beaten = any(
            _dominates(other, clock) and (j < i or not _dominates(clock, other))
            for j, (_, other) in enumerate(candidates)
            if j != i
        )
        if not beaten:
            out.append(replica)
    return out


class ClockSampler:
    """The clocks heard in heartbeats since the last sample (the latest per replica);
    `tick` says every ``periods`` ticks whom to ask for a transfer."""

    __slots__ = ("_heard", "_ticks", "periods")

    def __init__(self, periods: int) -> None:
        self.periods = periods
        self._heard: dict[Replica, Clocks] = {}
        self._ticks = 0

    def heard(self, replica: Replica, clocks: Clocks) -> None:
        """Remember the clocks of a heartbeat from ``replica``."""
        self._heard[replica] = clocks

    def forget(self, replica: Replica) -> None:
        """Drop a replica that went permdown."""
        self._heard.pop(replica, None)

    def tick(self, own: Mapping[Replica, int]) -> list[Replica]:
        """One heartbeat tick; on every ``periods``-th, the replicas to sync from
        (`clocks_to_sync`), and the heard clocks are reset. Otherwise ``[]``."""
        self._ticks += 1
        if self._ticks < self.periods:
            return []
        self._ticks = 0
        heard, self._heard = self._heard, {}
        return clocks_to_sync(own, heard)
