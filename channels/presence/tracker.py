"""The Tracker: shard processes that own the presence CRDT (Phoenix.Tracker).

A `Tracker` is configuration until its `child_spec` is started; then it runs
``pool_size`` shards (GenServers) under a one_for_one supervisor. A topic lives in
shard ``crc32(topic) % pool_size``, a stable hash (Phoenix: ``phash2(topic, pool_size)``),
so every node agrees on it. Each shard owns one `State` (the pure CRDT in
`._state`) and:

- serves `track`, `untrack` and `update` as calls (errors come back to the caller);
- links to every tracked pid and traps exits, as Phoenix's shard does: a tracked
  process that exits is untracked, and a shard that crashes takes its channels with
  it, so their clients rejoin and track again instead of silently vanishing from a
  restarted, empty shard;
- batches the joins and leaves of local changes and hands them to ``handle_diff``
  once per ``diff_period`` (default 50 ms), grouped per topic. Phoenix calls
  ``handle_diff`` after every single change; batching makes 10,000 joins cost a few
  broadcasts per topic instead of 10,000 (PROTOCOL.md §6.3);
- every ``broadcast_period`` (first tick at a random 0-25 % of it) publishes a
  `Heartbeat` with the delta since the last one through the `Replicator`, or an
  empty one after ``max_silent_periods`` silent ticks; every ``clock_sample_periods``
  ticks asks the replicas that have seen more than it for a transfer; and marks
  silent replicas down and permdown (PROTOCOL.md §7.4);
- answers what other replicas send (`Heartbeat`, `TransferReq`, `TransferAck`,
  `GracefulPermdown`, PROTOCOL.md §7.5) and publishes the joins and leaves they bring
  as diffs. The replica up/down logic and clock sampling are pure code in
  ``._replication``; the shard applies their transitions to its `State`.

Reads (`list`, `get_by_key`) do not go through the shard: like Phoenix's ETS reads,
they look at the shard's `State` directly from the caller (one OS thread: no race).

`LocalReplicator` is a node alone: heartbeats go to nobody. The cluster package
implements `Replicator` to carry the messages between nodes and feeds what arrives
into `Tracker.deliver`; that is all it has to do.
"""

from __future__ import annotations

import itertools
import random
import zlib
from base64 import urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic, time_ns
from typing import Any

from ...actors import (
    NORMAL,
    SHUTDOWN,
    ChildSpec,
    Exit,
    From,
    GenServer,
    Node,
    NoReply,
    Pid,
    Reply,
    Stop,
    Supervisor,
    call,
    current_node,
    link,
    self_pid,
    send_after,
    trap_exit,
    unlink,
)
from ..errors import ChannelError
from ._generations import DeltaGenerations
from ._replication import (
    ClockSampler,
    GracefulPermdown,
    Heartbeat,
    LocalReplicator,
    PermdownReplicator,
    ReplicaMessage,
    ReplicaTable,
    Replicator,
    TransferAck,
    TransferReq,
    Transition,
)
from ._state import Change, Replica, State

Meta = dict[str, Any]
Joins = list[tuple[str, Meta]]
Leaves = list[tuple[str, Meta]]
Diffs = dict[str, tuple[Joins, Leaves]]
"""topic -> (joins, leaves), each a list of (key, meta) in the order they happened."""


# -- errors --------------------------------------------------------------------------------


class TrackerError(ChannelError):
    """Root of the tracker's errors (a `ChannelError`)."""


class InvalidSettings(TrackerError):  # noqa: N818 - says what is wrong, as InvalidChildSpec
    """A tracker setting is out of range; ``field`` names it."""

    def __init__(self, field_name: str, why: str) -> None:
        self.field = field_name
        super().__init__(f"invalid tracker setting {field_name}: {why}")


class AlreadyTracked(TrackerError):  # noqa: N818 - Phoenix's {:error, {:already_tracked, ...}}
    """This (pid, topic, key) is tracked already."""

    def __init__(self, pid: Pid, topic: str, key: str) -> None:
        self.pid, self.topic, self.key = pid, topic, key
        super().__init__(f"{pid} is already tracked under {key!r} on {topic!r}")


class NoPresence(TrackerError):  # noqa: N818 - Phoenix's {:error, :nopresence}
    """`update` of a (pid, topic, key) that is not tracked."""


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """Phoenix.Tracker's options (PROTOCOL.md §7.1), in seconds.

    ``down_period`` defaults to ``broadcast_period * max_silent_periods * 2`` (30 s).
    ``diff_period`` is alight's: how long local joins/leaves are batched before
    ``handle_diff`` (0 = on the next turn of the shard's mailbox).
    ``permdown_on_shutdown``: on an orderly stop (``normal``/``shutdown``) each shard
    broadcasts `GracefulPermdown`, so peers drop its presences at once instead of after
    ``down_period``; the replicator must then be a `PermdownReplicator`.
    """

    broadcast_period: float = 1.5
    max_silent_periods: int = 10
    down_period: float | None = None
    permdown_period: float = 1200.0
    clock_sample_periods: int = 2
    pool_size: int = 1
    diff_period: float = 0.05
    max_delta_sizes: tuple[int, ...] = (100, 1_000, 10_000)
    permdown_on_shutdown: bool = False

    def validated(self) -> TrackerSettings:
        """These settings with defaults filled in; raises `InvalidSettings` naming
        the first bad field."""
        if not self.broadcast_period > 0:
            raise InvalidSettings("broadcast_period", f"must be > 0 seconds, got {self.broadcast_period!r}")
        if not (isinstance(self.max_silent_periods, int) and self.max_silent_periods >= 1):
            raise InvalidSettings("max_silent_periods", f"must be an int >= 1, got {self.max_silent_periods!r}")
        if not (isinstance(self.pool_size, int) and self.pool_size >= 1):
            raise InvalidSettings("pool_size", f"must be an int >= 1, got {self.pool_size!r}")
        if not (isinstance(self.clock_sample_periods, int) and self.clock_sample_periods >= 1):
            raise InvalidSettings("clock_sample_periods", f"must be an int >= 1, got {self.clock_sample_periods!r}")
        if not (self.max_delta_sizes and all(isinstance(n, int) and n > 0 for n in self.max_delta_sizes)):
            raise InvalidSettings("max_delta_sizes", f"must be positive ints, got {self.max_delta_sizes!r}")
        if not self.diff_period >= 0:
            raise InvalidSettings("diff_period", f"must be >= 0 seconds, got {self.diff_period!r}")
        down = self.down_period
        if down is None:
            down = self.broadcast_period * self.max_silent_periods * 2
        if not down >= 2 * self.broadcast_period:
            raise InvalidSettings(
                "down_period",
                f"must be >= 2 * broadcast_period ({2 * self.broadcast_period} s), got {down!r}",
            )
        if not self.permdown_period > down:
            raise InvalidSettings("permdown_period", f"must be > down_period ({down} s), got {self.permdown_period!r}")
        return TrackerSettings(
            self.broadcast_period,
            self.max_silent_periods,
            down,
            self.permdown_period,
            self.clock_sample_periods,
            self.pool_size,
            self.diff_period,
            tuple(self.max_delta_sizes),
            bool(self.permdown_on_shutdown),
        )


# -- the tracker -------------------------------------------------------------------------


_refs = itertools.count()


def make_phx_ref(shard_hash: int) -> str:
    """A 16-character unique ref: base64url of system time (ns, 64 bits), a hash of
    the shard (16 bits) and a counter (16 bits), as Phoenix builds ``phx_ref``."""
    raw = (time_ns() & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big")
    raw += (shard_hash & 0xFFFF).to_bytes(2, "big") + (next(_refs) & 0xFFFF).to_bytes(2, "big")
    return urlsafe_b64encode(raw).decode()


class Tracker:
    """Presence tracking for one application on this node; see the module docstring.

    ``handle_diff(diffs)`` is called in the shard process with ``{topic: (joins,
    leaves)}`` once per batch; it must be quick (send the diffs to another process).
    ``replica_name`` names this node's replicas (default: the node's name); trackers
    that replicate with each other on one node (tests) need distinct names. Raises
    `InvalidSettings` for bad settings, or ``permdown_on_shutdown`` without a
    `PermdownReplicator`.
    """

    def __init__(
        self,
        name: str,
        handle_diff: Callable[[Diffs], None],
        settings: TrackerSettings | None = None,
        replicator: Replicator | None = None,
        *,
        replica_name: str | None = None,
    ) -> None:
        self.name = name
        self.settings = (settings or TrackerSettings()).validated()
        self.handle_diff = handle_diff
        self.replicator: Replicator = replicator if replicator is not None else LocalReplicator()
        self.replica_name = replica_name
        if self.settings.permdown_on_shutdown and not isinstance(self.replicator, PermdownReplicator):
            raise InvalidSettings("permdown_on_shutdown", "the replicator has no graceful_permdown")
        self._shards: list[_Shard | None] = [None] * self.settings.pool_size

    def shard_name(self, index: int) -> str:
        return f"{self.name}_shard{index}"

    def shard_index(self, topic: str) -> int:
        return zlib.crc32(topic.encode()) % self.settings.pool_size

    def child_spec(self) -> ChildSpec:
        """A one_for_one supervisor of the shards."""
        tracker = self

        async def start() -> Pid:
            children = [
                ChildSpec(id=index, start=_start_shard(tracker, index), shutdown=5.0)
                for index in range(tracker.settings.pool_size)
            ]
            return await Supervisor.start_link(children, strategy="one_for_one", name=None)

        return ChildSpec(id=("tracker", self.name), start=start, type="supervisor", shutdown="infinity")

    def _shard(self, topic: str) -> _Shard:
        shard = self._shards[self.shard_index(topic)]
        if shard is None:
            raise TrackerError(f"tracker {self.name!r} is not running (or its shard for {topic!r} is restarting)")
        return shard

    # -- writes: calls to the shard ---------------------------------------------------------

    async def track(self, pid: Pid, topic: str, key: str, meta: Meta) -> str:
        """Track ``pid`` under ``key`` on ``topic`` with ``meta``; returns the new
        ``phx_ref``. Raises `AlreadyTracked`."""
        result: str | TrackerError = await call(self._shard(topic).pid, ("track", pid, topic, key, dict(meta)))
        if isinstance(result, TrackerError):
            raise result
        return result

    async def untrack(self, pid: Pid, topic: str | None = None, key: str | None = None) -> None:
        """Stop tracking ``pid`` under ``key`` on ``topic`` (no error if it was not
        tracked); without ``topic``, every presence of ``pid`` in every shard."""
        if topic is None:
            for shard in self._shards:
                if shard is not None:
                    await call(shard.pid, ("untrack_all", pid))
            return
        await call(self._shard(topic).pid, ("untrack", pid, topic, key))

    async def update(self, pid: Pid, topic: str, key: str, meta: Meta | Callable[[Meta], Meta]) -> str:
        """Replace the meta of a tracked presence (``meta`` or ``meta(old_meta)``); the
        new meta gets a new ``phx_ref`` and ``phx_ref_prev``. Returns the new ref;
        raises `NoPresence`."""
        result: str | TrackerError = await call(self._shard(topic).pid, ("update", pid, topic, key, meta))
        if isinstance(result, TrackerError):
            raise result
        return result

    # -- reads: straight from the shard's state ------------------------------------------------

    def get_by_key(self, topic: str, key: str) -> list[tuple[Pid, Meta]]:
        """Every (pid, meta) tracked under ``key`` on ``topic``."""
        # The state keeps pids opaque (Hashable); the tracker only ever stores Pids.
        return [(pid, meta) for pid, meta in self._shard(topic).state.get_by_key(topic, key) if isinstance(pid, Pid)]

    def list(self, topic: str) -> list[tuple[str, Meta]]:
        """Every (key, meta) on ``topic`` (of replicas that are up), in join order."""
        return [(key, meta) for key, meta, _pid in self._shard(topic).state.get_by_topic(topic)]

    def count(self) -> int:
        """How many presences this node sees across every topic (of replicas that are up):
        a gauge for metrics, O(presences)."""
        return sum(sum(1 for _ in shard.state.values()) for shard in self._shards if shard is not None)

    def version(self, topic: str) -> int:
        """A number that changes whenever ``topic``'s presences change (for caches)."""
        shard = self._shards[self.shard_index(topic)]
        return -1 if shard is None else shard.versions.get(topic, 0)

    def replica(self, index: int) -> Replica | None:
        """The replica of shard ``index`` (None while it is not running)."""
        shard = self._shards[index]
        return None if shard is None else shard.replica

    def deliver(self, message: ReplicaMessage) -> None:
        """Hand another replica's message to the same-named shard here (what the
        cluster does on arrival); dropped if that shard is not running. Works from
        any process, or from plain code on the node's loop."""
        for index, shard in enumerate(self._shards):
            if shard is not None and self.shard_name(index) == message.shard:
                shard.node.send(shard.pid, message)


def _start_shard(tracker: Tracker, index: int) -> Callable[[], Any]:
    async def start() -> Pid:
        return await _Shard.start_link(tracker, index)

    return start


# Version numbers never repeat (across topics, shards and restarts), so a cache keyed
# by one cannot be fooled by a topic that emptied (its entry is dropped) and refilled.
_versions = itertools.count(1)


@dataclass(slots=True)
class _Pending:
    """The joins and leaves not yet handed to ``handle_diff``."""

    diffs: Diffs = field(default_factory=dict)
    scheduled: bool = False


class _Shard(GenServer):
    """One shard: owns a `State`, serves the tracker's calls, ticks heartbeats."""

    tracker: Tracker
    state: State
    node: Node
    _pid: Pid

    async def init(self, *args: Any) -> None:
        tracker, index = args
        self.tracker = tracker
        self.index = index
        self.settings: TrackerSettings = tracker.settings
        self.shard_name = tracker.shard_name(index)
        self.shard_hash = zlib.crc32(self.shard_name.encode())
        # vsn: a restarted shard (or node) is a new replica (PROTOCOL.md §7.2).
        self.replica = Replica(tracker.replica_name or current_node().name, _vsn())
        self.state = State(self.replica)
        self._pid = self_pid()
        self.node = current_node()
        # topic -> the version of its last change; 0 (absent) = no presence.
        self.versions: dict[str, int] = {}
        self.pending = _Pending()
        self.silent_periods = self.settings.max_silent_periods  # the first tick announces us
        self.ticks = 0
        assert self.settings.down_period is not None  # filled in by `validated`
        self.replicas = ReplicaTable(self.settings.down_period, self.settings.permdown_period)
        self.sampler = ClockSampler(self.settings.clock_sample_periods)
        self.generations = DeltaGenerations(self.settings.max_delta_sizes)
        self.transfer_refs = itertools.count(1)
        trap_exit(True)
        send_after(self.settings.broadcast_period * random.uniform(0, 0.25), self._pid, "heartbeat")
        tracker._shards[index] = self

    @property
    def pid(self) -> Pid:
        return self._pid

    async def terminate(self, reason: Any) -> None:
        if self.tracker._shards[self.index] is self:
            self.tracker._shards[self.index] = None
        replicator = self.tracker.replicator
        if self.settings.permdown_on_shutdown and reason in (NORMAL, SHUTDOWN):
            # Phoenix's graceful_permdown: an orderly stop is final, peers need not
            # wait down_period (a crash stays silent: the restart is a new replica).
            assert isinstance(replicator, PermdownReplicator)  # checked by Tracker
            replicator.graceful_permdown(GracefulPermdown(self.shard_name, self.replica))

    # -- calls ---------------------------------------------------------------------------------

    async def handle_call(self, request: Any, from_: From) -> Reply | NoReply | Stop:
        kind = request[0]
        if kind == "track":
            return Reply(self._track(*request[1:]))
        if kind == "untrack":
            self._untrack(*request[1:])
            return Reply(None)
        if kind == "untrack_all":
            self._leave_pid(request[1])
            return Reply(None)
        if kind == "update":
            return Reply(self._update(*request[1:]))
        return await super().handle_call(request, from_)

    def _track(self, pid: Pid, topic: str, key: str, meta: Meta) -> str | TrackerError:
        state = self.state
        if state.get_meta(pid, topic, key) is not None:
            return AlreadyTracked(pid, topic, key)
        if not state.get_by_pid(pid):
            link(pid)
        ref = meta["phx_ref"] = make_phx_ref(self.shard_hash)
        state.join(pid, topic, key, meta)
        self._diff(topic, key, meta, joined=True)
        return ref

    def _untrack(self, pid: Pid, topic: str, key: str) -> None:
        meta = self.state.leave(pid, topic, key)
        if meta is None:
            return
        self._diff(topic, key, meta, joined=False)
        if not self.state.get_by_pid(pid):
            unlink(pid)

    def _leave_pid(self, pid: Pid) -> None:
        left = self.state.leave_pid(pid)
        for topic, key, meta in left:
            self._diff(topic, key, meta, joined=False)
        if left:
            unlink(pid)

    def _update(self, pid: Pid, topic: str, key: str, change: Meta | Callable[[Meta], Meta]) -> str | TrackerError:
        old = self.state.get_meta(pid, topic, key)
        if old is None:
            return NoPresence(f"{pid} is not tracked under {key!r} on {topic!r}")
        new = dict(change(dict(old)) if callable(change) else change)
        new.pop("phx_ref_prev", None)
        new["phx_ref_prev"] = old["phx_ref"]
        ref = new["phx_ref"] = make_phx_ref(self.shard_hash)
        # Phoenix's update is a leave and a join in one step: one diff with both.
        self.state.leave(pid, topic, key)
        self.state.join(pid, topic, key, new)
        self._diff(topic, key, old, joined=False)
        self._diff(topic, key, new, joined=True)
        return ref

    # -- diffs ---------------------------------------------------------------------------------

    def _diff(self, topic: str, key: str, meta: Meta, *, joined: bool) -> None:
        self.versions[topic] = next(_versions)
        pending = self.pending
        entry = pending.diffs.get(topic)
        if entry is None:
            entry = pending.diffs[topic] = ([], [])
        entry[0 if joined else 1].append((key, meta))
        if not pending.scheduled:
            pending.scheduled = True
            send_after(self.settings.diff_period, self._pid, "flush_diffs")

    def _flush(self) -> None:
        diffs = self.pending.diffs
        self.pending = _Pending()
        for topic in diffs:
            if not self.state.topic_size(topic):
                self.versions.pop(topic, None)
        if diffs:
            self.tracker.handle_diff(diffs)

    def _merged(self, joins: list[Change], leaves: list[Change]) -> None:
        for topic, key, meta, _pid in joins:
            self._diff(topic, key, meta, joined=True)
        for topic, key, meta, _pid in leaves:
            self._diff(topic, key, meta, joined=False)

    # -- messages ------------------------------------------------------------------------------

    async def handle_info(self, message: Any) -> None:
        kind = type(message)
        if kind is Exit:
            # A tracked process exited (the parent's Exit is handled by GenServer).
            self._leave_pid(message.pid)
        elif message == "flush_diffs":
            self._flush()
        elif message == "heartbeat":
            self._heartbeat()
        elif kind is Heartbeat:
            self._receive_heartbeat(message)
        elif kind is TransferReq:
            self._receive_transfer_req(message)
        elif kind is TransferAck:
            self._receive_transfer_ack(message)
        elif kind is GracefulPermdown and message.replica != self.replica:
            self._apply(self.replicas.graceful_permdown(message.replica))

    def _heartbeat(self) -> None:
        """One tick of PROTOCOL.md §7.4: broadcast, sample clocks, detect downs, reschedule."""
        settings = self.settings
        state = self.state
        replicator = self.tracker.replicator
        if state.has_delta():
            delta = state.take_delta()
            self.generations.push(delta)
            replicator.publish(Heartbeat(self.shard_name, self.replica, delta, state.clocks()))
            self.silent_periods = 0
        elif self.silent_periods >= settings.max_silent_periods:
            replicator.publish(Heartbeat(self.shard_name, self.replica, None, state.clocks()))
            self.silent_periods = 0
        else:
            self.silent_periods += 1
        self.ticks += 1
        clocks = state.clocks()
        for replica in self.sampler.tick(clocks):
            ref = next(self.transfer_refs)
            replicator.transfer_req(
                self.shard_name, replica, ref, TransferReq(self.shard_name, ref, self.replica, clocks)
            )
        self._apply(self.replicas.detect_down(monotonic()))
        send_after(settings.broadcast_period, self._pid, "heartbeat")

    def _apply(self, transitions: list[Transition]) -> None:
        """Apply replica transitions to the state, publishing the joins and leaves."""
        state = self.state
        for what, replica in transitions:
            if what == "up":
                self._merged(state.replica_up(replica), [])
            elif what == "down":
                self._merged([], state.replica_down(replica))
            else:
                # Permdown: forget it everywhere, so none of its values can come back
                # from a late delta or a stale generation (phoenix_pubsub#55/#60).
                if state.replicas.get(replica) == "up":
                    self._merged([], state.replica_down(replica))
                if replica in state.replicas:
                    state.remove_down_replicas(replica)
                self.generations.remove_replica(replica)
                self.sampler.forget(replica)

    def _receive_heartbeat(self, heartbeat: Heartbeat) -> None:
        """Another replica is alive: status transitions, then its delta, clocks and generation."""
        replica = heartbeat.replica
        if replica == self.replica:
            return
        self._apply(self.replicas.heartbeat(replica, monotonic()))
        if self.replicas.status(replica) is None:
            return  # it announced a graceful permdown: a late or duplicated heartbeat
        if heartbeat.delta is not None:
            self._merged(*self.state.merge(heartbeat.delta))
            self.generations.push(heartbeat.delta)
        self.sampler.heard(replica, heartbeat.clocks)

    def _receive_transfer_req(self, request: TransferReq) -> None:
        """Answer with the smallest delta generation that brings the requester up to date,
        else the full state; either extracted for it (PROTOCOL.md §7.5)."""
        if request.replica == self.replica:
            return
        generation = self.generations.find(request.clocks)
        answer = (
            self.state.extract(request.replica, request.clocks)
            if generation is None
            else generation.extract(request.replica, request.clocks)
        )
        ack = TransferAck(self.shard_name, request.ref, self.replica, answer)
        self.tracker.replicator.transfer_ack(self.shard_name, request.replica, request.ref, ack)

    def _receive_transfer_ack(self, ack: TransferAck) -> None:
        """Merge what we asked for; a full state resets the generations (Phoenix's
        ``push_delta_generation`` of a normal-mode state), a delta extends them."""
        if ack.replica == self.replica:
            return
        self._merged(*self.state.merge(ack.state))
        if isinstance(ack.state, State):
            self.generations.clear()
        else:
            self.generations.push(ack.state)


_last_vsn = 0


def _vsn() -> int:
    """A replica vsn: system time in ns, strictly increasing within this process (two
    shards started in the same tick still get distinct incarnations)."""
    global _last_vsn
    _last_vsn = max(time_ns(), _last_vsn + 1)
    return _last_vsn


__all__ = [
    "AlreadyTracked",
    "Diffs",
    "GracefulPermdown",
    "Heartbeat",
    "InvalidSettings",
    "LocalReplicator",
    "NoPresence",
    "PermdownReplicator",
    "ReplicaMessage",
    "Replicator",
    "Tracker",
    "TrackerError",
    "TrackerSettings",
    "TransferAck",
    "TransferReq",
    "make_phx_ref",
]
