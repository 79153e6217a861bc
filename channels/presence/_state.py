"""The tracker's CRDT: an observed-remove set with causal context (Phoenix.Tracker.State).

docs/protocol.md §7.3 and §7.6 in code. Pure: no I/O, no processes, no clock; the tracker shard
owns a `State`, feeds it local changes and remote heartbeats, and publishes the joins and
leaves that every call returns.

Vocabulary (phoenix_pubsub's):

- a **replica** is one incarnation of a tracker shard, ``Replica(name, vsn)``; a restarted
  node is a new replica;
- a **dot** ``(replica, clock)`` tags every change; each replica counts its own changes;
- the **context** maps a replica to the highest clock seen *contiguously*; the **clouds** hold
  the clocks seen beyond it (a dropped delta leaves a gap). ``covers(dot)`` = seen. Clouds are
  compacted into the context eagerly, so a dot is in one or the other, never both;
- a **value** is one presence: ``(topic, pid, key) -> (meta, dot)``;
- the **delta** collects this replica's own changes since the last `State.take_delta`
  (its added values, and the dots of every add and remove) for the next heartbeat.

Merge rule (observed-remove): a remote value joins when its replica is known here and its dot
has not been seen; a local value of another replica leaves when the remote has seen its dot but
no longer holds it. A pid lives on one replica, so for one ``(topic, pid, key)`` the value with
the newer dot wins and the older one is dead: an old delta can never bring back a presence
that left (no ghosts).

Values of a replica marked down are hidden from queries and reports but kept; a permanent
down (`State.remove_down_replicas`) deletes them with the replica's context.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

__all__ = [
    "Change",
    "Delta",
    "Dot",
    "Meta",
    "Replica",
    "State",
    "Status",
    "Value",
]

Topic: TypeAlias = str
Key: TypeAlias = str
Pid: TypeAlias = Hashable
Meta: TypeAlias = dict[str, Any]
Status: TypeAlias = Literal["up", "down"]


@dataclass(frozen=True, slots=True, order=True)
class Replica:
    """One incarnation of a tracker shard: Phoenix's ``{name, vsn}`` replica ref.

    ``vsn`` is chosen at start (unique per incarnation), so a restarted node is a new replica
    and the old one goes down and permdown (docs/protocol.md §7.5).
    """

    name: str
    vsn: int


Dot: TypeAlias = tuple[Replica, int]
Change: TypeAlias = tuple[Topic, Key, Meta, Pid]
"""A reported join or leave: ``(topic, key, meta, pid)``."""
Value: TypeAlias = tuple[Topic, Pid, Key, Meta, Dot]
"""One stored value with its dot, as `State.values` yields it."""

DEFAULT_MAX_DELTA_SIZES = (100, 1_000, 10_000)


class _Entry:
    """One value. Never mutated once built, so states and deltas share entries freely.

    A slotted object rather than a dataclass or nested tuples: about 150 bytes per presence.
    """

    __slots__ = ("clock", "key", "meta", "pid", "replica", "row", "topic")

    def __init__(self, topic: Topic, pid: Pid, key: Key, meta: Meta, replica: Replica, clock: int) -> None:
        self.topic = topic
        self.pid = pid
        self.key = key
        self.meta = meta
        self.replica = replica
        self.clock = clock
        # Built once so that `get_by_topic` allocates nothing but the list: 100,000 fresh
        # tuples per call would also trigger full garbage collections.
        self.row: tuple[Key, Meta, Pid] = (key, meta, pid)

    @property
    def dot(self) -> Dot:
        return (self.replica, self.clock)

    def change(self) -> Change:
        return (self.topic, self.key, self.meta, self.pid)

    def value(self) -> Value:
        return (self.topic, self.pid, self.key, self.meta, (self.replica, self.clock))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Entry, (self.topic, self.pid, self.key, self.meta, self.replica, self.clock))


_NO_CLOCKS: frozenset[int] = frozenset()


# -- clocks (Phoenix.Tracker.Clock) -------------------------------------------------------------


def dominates_or_equal(c1: Mapping[Replica, int], c2: Mapping[Replica, int]) -> bool:
    """Phoenix's ``Clock.dominates_or_equal?``: every entry of ``c1`` is ≥ the one in ``c2``."""
    if not c1:
        return not c2
    return all(clock >= c2.get(replica, 0) for replica, clock in c1.items())


def dominates(c1: Mapping[Replica, int], c2: Mapping[Replica, int]) -> bool:
    """Phoenix's ``Clock.dominates?``: ``c1`` has every replica of ``c2`` at a clock ≥ its own."""
    if len(c1) < len(c2):
        return False
    return all(c1.get(replica, 0) >= clock for replica, clock in c2.items())


def _bound(c1: Mapping[Replica, int], c2: Mapping[Replica, int], pick: Any) -> dict[Replica, int]:
    merged = dict(c1)
    for replica, clock in c2.items():
        merged[replica] = pick(merged[replica], clock) if replica in merged else clock
    return merged


# -- delta --------------------------------------------------------------------------------------


class Delta:
    """Changes since some point: what a heartbeat carries (Phoenix's State in ``:delta`` mode).

    ``values`` maps the dot of every value added in the range and still present to it;
    ``clouds`` holds the dots of every add and remove in the range (a dot without a value
    means "removed"); ``start``/``end`` is the context range covered. Treat a delta as
    immutable once taken: `merge` and `extract` return new deltas.
    """

    __slots__ = ("clouds", "end", "start", "values")

    def __init__(
        self,
        start: Mapping[Replica, int],
        end: Mapping[Replica, int] | None = None,
        values: dict[Dot, _Entry] | None = None,
        clouds: dict[Replica, set[int]] | None = None,
    ) -> None:
        self.start = dict(start)
        self.end = dict(start if end is None else end)
        self.values: dict[Dot, _Entry] = {} if values is None else values
        self.clouds: dict[Replica, set[int]] = {} if clouds is None else clouds

    def __repr__(self) -> str:
        return f"<Delta {self.start}..{self.end} values={len(self.values)} size={self.size()}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Delta, (self.start, self.end, self.values, self.clouds))

    def size(self) -> int:
        """Values plus dots, Phoenix's ``delta_size`` (what `DeltaGenerations` caps)."""
        return len(self.values) + sum(len(cloud) for cloud in self.clouds.values())

    def is_empty(self) -> bool:
        """True when no add or remove was recorded (the heartbeat is then ``:empty``)."""
        return not any(self.clouds.values())

    def covers(self, dot: Dot) -> bool:
        """Whether the delta records an add or a remove of ``dot``."""
        return dot[1] in self.clouds.get(dot[0], _NO_CLOCKS)

    def entries(self) -> Iterator[Value]:
        """The values the delta adds, with their dots."""
        return (entry.value() for entry in self.values.values())

    def extract(self, remote_replica: Replica, remote_context: Mapping[Replica, int]) -> Delta:
        """What to send ``remote_replica``: only the other replicas it knows.

        The requester's own replica goes entirely (values, dots and range), not just its
        values: the requester pushes the answer into its delta generations, and a dot
        without its value reads as a remove there, so `merge` would drop the requester's
        own values from them and a later transfer answered from those generations would
        cover dots whose values it does not carry.
        """
        keep = {r for r in remote_context if r != remote_replica}
        return Delta(
            {r: c for r, c in self.start.items() if r in keep},
            {r: c for r, c in self.end.items() if r in keep},
            {dot: entry for dot, entry in self.values.items() if dot[0] in keep},
            {r: set(cloud) for r, cloud in self.clouds.items() if r in keep},
        )

    def merge(self, other: Delta) -> Delta | None:
        """This delta followed by ``other``, or None when their ranges are not contiguous.

        Phoenix's ``merge_deltas``: a value survives unless the other side saw its dot and
        dropped it; the range becomes the union of both.
        """
        if not (dominates_or_equal(other.end, self.start) and dominates_or_equal(self.end, other.start)):
            return None
        clouds = {r: set(cloud) for r, cloud in self.clouds.items()}
        for r, cloud in other.clouds.items():
            clouds.setdefault(r, set()).update(cloud)
        values = {dot: e for dot, e in self.values.items() if dot in other.values or not other.covers(dot)}
        for dot, entry in other.values.items():
            if dot not in self.values and not self.covers(dot):
                values[dot] = entry
        return Delta(_bound(self.start, other.start, min), _bound(self.end, other.end, max), values, clouds)

    def without_replica(self, replica: Replica) -> Delta:
        """This delta with every trace of a permanently down replica removed."""
        return Delta(
            {r: c for r, c in self.start.items() if r != replica},
            {r: c for r, c in self.end.items() if r != replica},
            {dot: e for dot, e in self.values.items() if dot[0] != replica},
            {r: set(cloud) for r, cloud in self.clouds.items() if r != replica},
        )


# -- state --------------------------------------------------------------------------------------


class State:
    """One replica's view of every presence of its shard (Phoenix.Tracker.State, normal mode).

    Indexed three ways so that every query touches only what it returns: by topic (``list``
    of a 10,000-presence topic builds one list), by pid (a pid's exit), and by replica and
    clock (merges, down, permdown). Mutating methods change the state in place and return
    the joins and leaves the caller publishes.
    """

    __slots__ = ("_by_dot", "_by_pid", "_by_topic", "_clouds", "_context", "_delta", "_down", "_replicas", "replica")

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self._context: dict[Replica, int] = {replica: 0}
        self._clouds: dict[Replica, set[int]] = {}
        self._by_topic: dict[Topic, dict[tuple[Pid, Key], _Entry]] = {}
        self._by_pid: dict[Pid, list[_Entry]] = {}
        self._by_dot: dict[Replica, dict[int, _Entry]] = {}
        self._replicas: dict[Replica, Status] = {replica: "up"}
        self._down: frozenset[Replica] = frozenset()
        self._delta = Delta({replica: 0})

    def __repr__(self) -> str:
        return f"<State {self.replica} values={len(self)} context={self._context}>"

    def __len__(self) -> int:
        """Number of stored values, hidden ones (of down replicas) included."""
        return sum(len(entries) for entries in self._by_dot.values())

    # -- causal context

    @property
    def context(self) -> Mapping[Replica, int]:
        """Replica -> highest clock seen contiguously (a read-only view)."""
        return MappingProxyType(self._context)

    @property
    def clouds(self) -> dict[Replica, frozenset[int]]:
        """Replica -> clocks seen beyond the context (a copy; empty when nothing is missing)."""
        return {r: frozenset(cloud) for r, cloud in self._clouds.items() if cloud}

    @property
    def replicas(self) -> Mapping[Replica, Status]:
        """Known replicas and their status (a read-only view)."""
        return MappingProxyType(self._replicas)

    def clocks(self) -> dict[Replica, int]:
        """The context to send peers, without down replicas (Phoenix's ``clocks/1``).

        Down replicas are left out because deltas leave them out too: otherwise a replica that
        came up after one went down would keep asking this one for a full transfer.
        """
        return {r: c for r, c in self._context.items() if r not in self._down}

    def covers(self, dot: Dot) -> bool:
        """Whether ``dot`` has been seen (added or removed) by this replica."""
        replica, clock = dot
        seen = self._context.get(replica)
        return seen is not None and (clock <= seen or clock in self._clouds.get(replica, _NO_CLOCKS))

    # -- local changes

    def join(self, pid: Pid, topic: Topic, key: Key, meta: Meta) -> None:
        """Track ``pid`` in ``topic`` under ``key``: a new dot, recorded in the delta.

        Raises ValueError if ``(topic, pid, key)`` is already tracked; the tracker checks first
        and answers ``{:error, {:already_tracked, ...}}``. An update is `leave` then `join`.
        """
        if (pid, key) in self._by_topic.get(topic, ()):
            raise ValueError(f"already tracked: {(pid, topic, key)!r}")
        entry = _Entry(topic, pid, key, meta, self.replica, self._bump())
        self._insert(entry)
        self._delta.values[(self.replica, entry.clock)] = entry

    def leave(self, pid: Pid, topic: Topic, key: Key) -> Meta | None:
        """Untrack one presence of this replica; returns its meta, or None if not tracked here.

        Like Phoenix, a remove takes a dot of its own (the clock moves), so peers that missed
        it see a newer clock and ask for a transfer.
        """
        entry = self._by_topic.get(topic, {}).get((pid, key))
        if entry is None or entry.replica != self.replica:
            return None
        self._remove(entry)
        delta = self._delta
        delta.values.pop((entry.replica, entry.clock), None)
        delta.clouds.setdefault(self.replica, set()).add(entry.clock)
        self._bump()
        return entry.meta

    def leave_pid(self, pid: Pid) -> list[tuple[Topic, Key, Meta]]:
        """Untrack every presence of ``pid`` (it exited); returns ``(topic, key, meta)`` of each."""
        left = []
        for entry in list(self._by_pid.get(pid, ())):
            meta = self.leave(pid, entry.topic, entry.key)
            if meta is not None:
                left.append((entry.topic, entry.key, meta))
        return left

    def _bump(self) -> int:
        clock = self._context[self.replica] + 1
        self._context[self.replica] = clock
        self._delta.end[self.replica] = clock
        self._delta.clouds.setdefault(self.replica, set()).add(clock)
        return clock

    # -- queries

    def get_by_topic(self, topic: Topic) -> list[tuple[Key, Meta, Pid]]:
        """``(key, meta, pid)`` of every visible presence in ``topic``, in insertion order."""
        entries = self._by_topic.get(topic)
        if not entries:
            return []
        down = self._down
        if not down:
            return [e.row for e in entries.values()]
        return [e.row for e in entries.values() if e.replica not in down]

    def get_by_key(self, topic: Topic, key: Key) -> list[tuple[Pid, Meta]]:
        """``(pid, meta)`` of every visible presence of ``key`` in ``topic`` (scans the topic)."""
        down = self._down
        return [
            (e.pid, e.meta) for e in self._by_topic.get(topic, {}).values() if e.key == key and e.replica not in down
        ]

    def get_by_pid(self, pid: Pid) -> list[tuple[Topic, Key, Meta]]:
        """``(topic, key, meta)`` of every presence of ``pid``."""
        return [(e.topic, e.key, e.meta) for e in self._by_pid.get(pid, ())]

    def get_meta(self, pid: Pid, topic: Topic, key: Key) -> Meta | None:
        """The meta of one presence, or None (hidden ones included)."""
        entry = self._by_topic.get(topic, {}).get((pid, key))
        return None if entry is None else entry.meta

    def topic_size(self, topic: Topic) -> int:
        """Number of stored presences in ``topic``, hidden ones included."""
        return len(self._by_topic.get(topic, ()))

    def values(self, *, include_down: bool = False) -> Iterator[Value]:
        """Every value with its dot; hidden values of down replicas only if asked."""
        for replica, entries in self._by_dot.items():
            if include_down or replica not in self._down:
                for entry in entries.values():
                    yield entry.value()

    # -- delta

    def has_delta(self) -> bool:
        """Whether local changes wait for the next heartbeat."""
        return not self._delta.is_empty()

    @property
    def delta(self) -> Delta:
        """The pending delta (read it; do not change it)."""
        return self._delta

    def take_delta(self) -> Delta:
        """Return the pending delta and start a new one from the current clock (heartbeat)."""
        delta = self._delta
        clock = {self.replica: self._context[self.replica]}
        self._delta = Delta(clock)
        return delta

    # -- replication

    def copy(self) -> State:
        """An independent state with the same content (values are shared, they never change)."""
        out = State(self.replica)
        out._context = dict(self._context)
        out._clouds = {r: set(cloud) for r, cloud in self._clouds.items()}
        out._replicas = dict(self._replicas)
        out._down = self._down
        out._delta = Delta(
            self._delta.start,
            self._delta.end,
            dict(self._delta.values),
            {r: set(cloud) for r, cloud in self._delta.clouds.items()},
        )
        for entries in self._by_dot.values():
            for entry in entries.values():
                out._insert(entry)
        return out

    def extract(self, remote_replica: Replica, remote_context: Mapping[Replica, int]) -> State:
        """The full state to send ``remote_replica`` for a transfer request.

        Restricted to the replicas the requester knows (the keys of ``remote_context``) and
        without the requester's own values, which it knows best.
        """
        out = State(self.replica)
        out._context = {r: c for r, c in self._context.items() if r in remote_context}
        out._clouds = {r: set(cloud) for r, cloud in self._clouds.items() if r in remote_context}
        out._replicas = {r: s for r, s in self._replicas.items() if r in remote_context}
        out._down = frozenset(r for r, s in out._replicas.items() if s == "down")
        for replica, entries in self._by_dot.items():
            if replica != remote_replica and replica in remote_context:
                for entry in entries.values():
                    out._insert(entry)
        return out

    def merge(self, remote: State | Delta) -> tuple[list[Change], list[Change]]:
        """Merge a remote full state (from `extract`) or a delta; returns ``(joins, leaves)``.

        Joins: remote values of replicas known here whose dot was not seen. Leaves: local
        values of other replicas whose dot the remote has seen but no longer holds. Contexts
        take the pointwise max over known replicas, clouds are united, then compacted. Values of
        down replicas are merged but not reported, so the reports are exactly the change in
        what `get_by_topic` shows.
        """
        if isinstance(remote, Delta):
            joining = self._unseen(remote.values.values())
            leaving = self._dropped_by_delta(remote)
            remote_context: Mapping[Replica, int] = {}
        else:
            joining = self._unseen(e for r, es in remote._by_dot.items() if r in self._context for e in es.values())
            leaving = self._dropped_by_state(remote)
            remote_context = remote._context
        joins, leaves = self._apply(joining, leaving)
        self._observe(remote_context, remote.clouds if isinstance(remote, Delta) else remote._clouds, joining)
        return joins, leaves

    def _unseen(self, entries: Iterable[_Entry]) -> list[_Entry]:
        context, clouds = self._context, self._clouds
        unseen = []
        for e in entries:
            seen = context.get(e.replica)
            if seen is not None and e.clock > seen and e.clock not in clouds.get(e.replica, _NO_CLOCKS):
                unseen.append(e)
        return unseen

    def _dropped_by_delta(self, delta: Delta) -> list[_Entry]:
        dropped: list[_Entry] = []
        for replica, cloud in delta.clouds.items():
            mine = self._by_dot.get(replica)
            if replica == self.replica or not mine:
                continue
            if len(cloud) <= len(mine):
                candidates = [e for c in cloud if (e := mine.get(c)) is not None]
            else:
                candidates = [e for c, e in mine.items() if c in cloud]
            dropped.extend(e for e in candidates if (replica, e.clock) not in delta.values)
        return dropped

    def _dropped_by_state(self, remote: State) -> list[_Entry]:
        dropped: list[_Entry] = []
        for replica, mine in self._by_dot.items():
            if replica == self.replica:
                continue
            seen = remote._context.get(replica, 0)
            cloud = remote._clouds.get(replica, _NO_CLOCKS)
            theirs = remote._by_dot.get(replica, {})
            dropped.extend(e for c, e in mine.items() if (c <= seen or c in cloud) and c not in theirs)
        return dropped

    def _apply(self, joining: list[_Entry], leaving: list[_Entry]) -> tuple[list[Change], list[Change]]:
        added: dict[int, _Entry] = {}
        removed: list[_Entry] = []
        for entry in leaving:
            self._remove(entry)
            removed.append(entry)
        for entry in joining:
            current = self._by_topic.get(entry.topic, {}).get((entry.pid, entry.key))
            if current is not None:
                # One (topic, pid, key) lives on one replica, which removed the older value
                # before adding the newer: keep the newer, the older is dead (no ghosts).
                if current.replica == self.replica or (current.clock, current.replica) >= (entry.clock, entry.replica):
                    continue
                self._remove(current)
                if added.pop(id(current), None) is None:
                    removed.append(current)
            self._insert(entry)
            added[id(entry)] = entry
        down = self._down
        joins = [e.change() for e in added.values() if e.replica not in down]
        leaves = [e.change() for e in removed if e.replica not in down]
        return joins, leaves

    def _observe(
        self, remote_context: Mapping[Replica, int], remote_clouds: Mapping[Replica, set[int]], joined: list[_Entry]
    ) -> None:
        context, clouds = self._context, self._clouds
        touched = set()
        for replica, clock in remote_context.items():
            seen = context.get(replica)
            if seen is not None and clock > seen:
                context[replica] = clock
                touched.add(replica)
        for replica, cloud in remote_clouds.items():
            if replica in context and cloud:
                clouds.setdefault(replica, set()).update(cloud)
                touched.add(replica)
        for entry in joined:
            clouds.setdefault(entry.replica, set()).add(entry.clock)
            touched.add(entry.replica)
        for replica in touched:
            self._compact(replica)

    def _compact(self, replica: Replica) -> None:
        """Fold the cloud clocks contiguous with the context into it (Phoenix's ``compact``)."""
        cloud = self._clouds.get(replica)
        if cloud is None:
            return
        clock = self._context[replica]
        while clock + 1 in cloud:
            clock += 1
        self._context[replica] = clock
        cloud = {c for c in cloud if c > clock}
        if cloud:
            self._clouds[replica] = cloud
        else:
            del self._clouds[replica]

    # -- replica status

    def replica_up(self, replica: Replica) -> list[Change]:
        """Mark ``replica`` up (adding it with clock 0 if new); a down replica's values rejoin."""
        was = self._replicas.get(replica)
        self._context.setdefault(replica, 0)
        self._replicas[replica] = "up"
        self._down = self._down - {replica}
        if was != "down":
            return []
        return [e.change() for e in self._by_dot.get(replica, {}).values()]

    def replica_down(self, replica: Replica) -> list[Change]:
        """Mark ``replica`` down: its values are hidden (and returned as leaves), not deleted."""
        if replica == self.replica:
            raise ValueError("a replica cannot mark itself down")
        was = self._replicas.get(replica)
        self._replicas[replica] = "down"
        self._down = self._down | {replica}
        if was == "down":
            return []
        return [e.change() for e in self._by_dot.get(replica, {}).values()]

    def remove_down_replicas(self, replica: Replica) -> None:
        """Permdown: delete ``replica``'s values, context and clouds; it becomes unknown.

        Values from it that arrive later are then ignored (no zombies, phoenix_pubsub#55/#60).
        Call `replica_down` first: this reports nothing.
        """
        if replica == self.replica:
            raise ValueError("a replica cannot remove itself")
        for entry in list(self._by_dot.get(replica, {}).values()):
            self._remove(entry)
        self._context.pop(replica, None)
        self._clouds.pop(replica, None)
        self._replicas.pop(replica, None)
        self._down = self._down - {replica}
        self._delta = self._delta.without_replica(replica)

    # -- indexes

    def _insert(self, entry: _Entry) -> None:
        self._by_topic.setdefault(entry.topic, {})[(entry.pid, entry.key)] = entry
        by_pid = self._by_pid.get(entry.pid)
        if by_pid is None:
            self._by_pid[entry.pid] = [entry]
        else:
            by_pid.append(entry)
        self._by_dot.setdefault(entry.replica, {})[entry.clock] = entry

    def _remove(self, entry: _Entry) -> None:
        topic = self._by_topic[entry.topic]
        del topic[(entry.pid, entry.key)]
        if not topic:
            del self._by_topic[entry.topic]
        by_pid = self._by_pid[entry.pid]
        by_pid.remove(entry)
        if not by_pid:
            del self._by_pid[entry.pid]
        by_dot = self._by_dot[entry.replica]
        del by_dot[entry.clock]
        if not by_dot:
            del self._by_dot[entry.replica]
