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
  empty one after ``max_silent_periods`` silent ticks (PROTOCOL.md §7.4).

Reads (`list`, `get_by_key`) do not go through the shard: like Phoenix's ETS reads,
they look at the shard's `State` directly from the caller (one OS thread: no race).

`LocalReplicator` is a node alone: heartbeats go to nobody. The cluster package
implements `Replicator` to carry heartbeats and transfers between nodes and feeds
what arrives into `Tracker.deliver`.
"""

from __future__ import annotations

import itertools
import random
import zlib
from base64 import urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic, time_ns
from typing import Any, Protocol

from ...actors import (
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
from ._state import Change, Delta, Replica, State

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
    """

    broadcast_period: float = 1.5
    max_silent_periods: int = 10
    down_period: float | None = None
    permdown_period: float = 1200.0
    clock_sample_periods: int = 2
    pool_size: int = 1
    diff_period: float = 0.05

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
        )


# -- what goes between replicas ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """``{:pub, :heartbeat, replica, delta | :empty, clocks}``: ``delta`` is None for
    an empty heartbeat."""

    shard: str
    replica: Replica
    delta: Delta | None
    clocks: dict[Replica, int]


class Replicator(Protocol):
    """How a shard reaches the same-named shard of the other replicas (the cluster
    package implements it; what arrives is fed to `Tracker.deliver`)."""

    def publish(self, heartbeat: Heartbeat) -> None:
        """Deliver ``heartbeat`` to every other replica's shard ``heartbeat.shard``."""

    def transfer_req(self, shard: str, to: Replica, ref: Any, clocks: dict[Replica, int]) -> None:
        """Ask replica ``to`` for what we have not seen (it answers `transfer_ack`)."""

    def transfer_ack(self, shard: str, to: Replica, ref: Any, state: State | Delta) -> None:
        """Answer a `transfer_req` with ``state`` (a delta or `State.extract`'s state)."""


class LocalReplicator:
    """A node alone: there are no other replicas, so nothing is delivered."""

    def __init__(self) -> None:
        self.published = 0
        """Heartbeats published (for tests and statistics)."""

    def publish(self, heartbeat: Heartbeat) -> None:
        self.published += 1

    def transfer_req(self, shard: str, to: Replica, ref: Any, clocks: dict[Replica, int]) -> None:
        return None

    def transfer_ack(self, shard: str, to: Replica, ref: Any, state: State | Delta) -> None:
        return None


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
    """

    def __init__(
        self,
        name: str,
        handle_diff: Callable[[Diffs], None],
        settings: TrackerSettings | None = None,
        replicator: Replicator | None = None,
    ) -> None:
        self.name = name
        self.settings = (settings or TrackerSettings()).validated()
        self.handle_diff = handle_diff
        self.replicator: Replicator = replicator if replicator is not None else LocalReplicator()
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

    def version(self, topic: str) -> int:
        """A number that changes whenever ``topic``'s presences change (for caches)."""
        shard = self._shards[self.shard_index(topic)]
        return -1 if shard is None else shard.versions.get(topic, 0)

    def deliver(self, heartbeat: Heartbeat) -> None:
        """Hand another replica's heartbeat to the same-named shard here (what the
        cluster does on arrival); dropped if that shard is not running. Works from
        any process, or from plain code on the node's loop."""
        for index, shard in enumerate(self._shards):
            if shard is not None and self.shard_name(index) == heartbeat.shard:
                shard.node.send(shard.pid, heartbeat)


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
        self.replica = Replica(current_node().name, time_ns())
        self.state = State(self.replica)
        self._pid = self_pid()
        self.node = current_node()
        # topic -> the version of its last change; 0 (absent) = no presence.
        self.versions: dict[str, int] = {}
        self.pending = _Pending()
        self.silent_periods = self.settings.max_silent_periods  # the first tick announces us
        self.ticks = 0
        self.last_heartbeat: dict[Replica, float] = {}
        trap_exit(True)
        send_after(self.settings.broadcast_period * random.uniform(0, 0.25), self._pid, "heartbeat")
        tracker._shards[index] = self

    @property
    def pid(self) -> Pid:
        return self._pid

    async def terminate(self, reason: Any) -> None:
        if self.tracker._shards[self.index] is self:
            self.tracker._shards[self.index] = None

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
        if type(message) is Exit:
            # A tracked process exited (the parent's Exit is handled by GenServer).
            self._leave_pid(message.pid)
        elif message == "flush_diffs":
            self._flush()
        elif message == "heartbeat":
            self._heartbeat()
        elif type(message) is Heartbeat:
            self._receive_heartbeat(message)

    def _heartbeat(self) -> None:
        """One tick of PROTOCOL.md §7.4: steps 1, 3 and 4. Step 2 (clock sampling and
        transfer requests) and vsn changes come with the cluster, which has peers."""
        settings = self.settings
        state = self.state
        if state.has_delta():
            delta = state.take_delta()
            self.tracker.replicator.publish(Heartbeat(self.shard_name, self.replica, delta, state.clocks()))
            self.silent_periods = 0
        elif self.silent_periods >= settings.max_silent_periods:
            self.tracker.replicator.publish(Heartbeat(self.shard_name, self.replica, None, state.clocks()))
            self.silent_periods = 0
        else:
            self.silent_periods += 1
        self.ticks += 1
        self._detect_down(monotonic())
        send_after(settings.broadcast_period, self._pid, "heartbeat")

    def _detect_down(self, now: float) -> None:
        """Step 3 of §7.4: a replica silent for ``down_period`` is down (its
        presences leave), for ``permdown_period`` it is forgotten."""
        settings = self.settings
        assert settings.down_period is not None  # filled in by `validated`
        state = self.state
        for replica, last in list(self.last_heartbeat.items()):
            silent = now - last
            if silent > settings.down_period and state.replicas.get(replica) == "up":
                self._merged([], state.replica_down(replica))
            if silent > settings.permdown_period:
                if state.replicas.get(replica) == "up":
                    self._merged([], state.replica_down(replica))
                state.remove_down_replicas(replica)
                del self.last_heartbeat[replica]

    def _receive_heartbeat(self, heartbeat: Heartbeat) -> None:
        """A heartbeat of another replica: note it is alive, merge its delta."""
        if heartbeat.replica == self.replica:
            return
        if self.state.replicas.get(heartbeat.replica) != "up":
            self._merged(self.state.replica_up(heartbeat.replica), [])
        self.last_heartbeat[heartbeat.replica] = monotonic()
        if heartbeat.delta is not None:
            self._merged(*self.state.merge(heartbeat.delta))


__all__ = [
    "AlreadyTracked",
    "Diffs",
    "Heartbeat",
    "InvalidSettings",
    "LocalReplicator",
    "NoPresence",
    "Replicator",
    "Tracker",
    "TrackerError",
    "TrackerSettings",
    "make_phx_ref",
]
