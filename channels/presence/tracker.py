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
  once per ``diff_period`` (default 50 ms), grouped per topic and netted per
  ``phx_ref`` (`._diffs`: a diff never holds a ref on both sides, and it brings any
  client's view, however it was taken, to the current state). Phoenix calls
  ``handle_diff`` after every single change; batching makes 10,000 joins cost a few
  broadcasts per topic instead of 10,000 (docs/protocol.md §6.3);
- every ``broadcast_period`` (first tick at a random 0-25 % of it) publishes a
  `Heartbeat` with the delta since the last one through the `Replicator`, or an
  empty one after ``max_silent_periods`` silent ticks; every ``clock_sample_periods``
  ticks asks the replicas that have seen more than it for a transfer; and marks
  silent replicas down and permdown (docs/protocol.md §7.4);
- answers what other replicas send (`Heartbeat`, `TransferReq`, `TransferAck`,
  `GracefulPermdown`, docs/protocol.md §7.5) and publishes the joins and leaves they bring
  as diffs.

Every decision of a shard is the pure `._shard.ShardCore` (events in, effects out);
the shard process only performs its effects, so the deterministic simulation
(`alight.channels.presence.simulation`) runs the very same code under faults.

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
from time import monotonic, time_ns
from typing import Any, assert_never

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
from ._diffs import Diffs
from ._replication import (
    GracefulPermdown,
    Heartbeat,
    LocalReplicator,
    PermdownReplicator,
    ReplicaMessage,
    Replicator,
    TransferAck,
    TransferReq,
)
from ._settings import AlreadyTracked, InvalidSettings, NoPresence, TrackerError, TrackerSettings
from ._shard import (
    AckTransfer,
    Effect,
    FlushAfter,
    Link,
    Publish,
    PublishPermdown,
    RequestTransfer,
    ShardCore,
    Unlink,
)
from ._state import Replica, State

Meta = dict[str, Any]


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

    async def leave(self) -> None:
        """This node's replicas leave the cluster for good (the node drains): each shard
        announces a graceful permdown (with ``permdown_on_shutdown``) and says nothing
        more, so that the other nodes drop this node's presences at once rather than as
        its connections close. Tracking still works, for this node alone."""
        for shard in self._shards:
            if shard is not None:
                await call(shard.pid, ("leave",))

    # -- reads: straight from the shard's state ------------------------------------------------

    def get_by_key(self, topic: str, key: str) -> list[tuple[Pid, Meta]]:
        """Every (pid, meta) tracked under ``key`` on ``topic``."""
        # The state keeps pids opaque (Hashable); the tracker only ever stores Pids.
        return [(pid, meta) for pid, meta in self._shard(topic).state.get_by_key(topic, key) if isinstance(pid, Pid)]

    def list(self, topic: str) -> list[tuple[str, Meta]]:
        """Every (key, meta) on ``topic`` (of replicas that are up), in join order. What
        it returns is a view a client may be given (a ``presence_state``): the diffs
        batched from now on are netted so that they bring that view up to date."""
        return [(key, meta) for key, meta, _pid in self._shard(topic).core.presences(topic)]

    def count(self) -> int:
        """How many presences this node sees across every topic (of replicas that are up):
        a gauge for metrics, O(presences)."""
        return sum(sum(1 for _ in shard.state.values()) for shard in self._shards if shard is not None)

    def version(self, topic: str) -> int:
        """A number that changes whenever ``topic``'s presences change (for caches)."""
        shard = self._shards[self.shard_index(topic)]
        return -1 if shard is None else shard.core.versions.get(topic, 0)

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


class _Shard(GenServer):
    """One shard's process: the shell around its `ShardCore`. It serves the tracker's
    calls, runs the heartbeat and diff timers, links tracked pids, and performs what the
    core returns; every decision is the core's."""

    tracker: Tracker
    core: ShardCore
    node: Node
    _pid: Pid

    async def init(self, *args: Any) -> None:
        tracker, index = args
        self.tracker = tracker
        self.index = index
        self.settings: TrackerSettings = tracker.settings
        shard_name = tracker.shard_name(index)
        shard_hash = zlib.crc32(shard_name.encode())
        # vsn: a restarted shard (or node) is a new replica (docs/protocol.md §7.2).
        self.replica = Replica(tracker.replica_name or current_node().name, _vsn())
        self.core = ShardCore(
            self.settings, shard_name, self.replica, monotonic(), lambda: make_phx_ref(shard_hash), _versions.__next__
        )
        self._pid = self_pid()
        self.node = current_node()
        trap_exit(True)
        send_after(self.settings.broadcast_period * random.uniform(0, 0.25), self._pid, "heartbeat")
        tracker._shards[index] = self

    @property
    def pid(self) -> Pid:
        return self._pid

    @property
    def state(self) -> State:
        """The shard's CRDT (read directly by the tracker's reads, as Phoenix's ETS)."""
        return self.core.state

    async def terminate(self, reason: Any) -> None:
        if self.tracker._shards[self.index] is self:
            self.tracker._shards[self.index] = None
        self._perform(self.core.shutdown(reason in (NORMAL, SHUTDOWN)))

    def _perform(self, effects: list[Effect]) -> None:
        replicator = self.tracker.replicator
        for effect in effects:
            match effect:
                case FlushAfter(delay):
                    send_after(delay, self._pid, "flush_diffs")
                case Link(pid):
                    link(pid)  # type: ignore[arg-type]  # the core keeps pids opaque
                case Unlink(pid):
                    unlink(pid)  # type: ignore[arg-type]
                case Publish(heartbeat):
                    replicator.publish(heartbeat)
                case RequestTransfer(to, request):
                    replicator.transfer_req(request.shard, to, request.ref, request)
                case AckTransfer(to, ack):
                    replicator.transfer_ack(ack.shard, to, ack.ref, ack)
                case PublishPermdown(message):
                    assert isinstance(replicator, PermdownReplicator)  # checked by Tracker
                    replicator.graceful_permdown(message)
                case _:
                    assert_never(effect)

    # -- calls ---------------------------------------------------------------------------------

    async def handle_call(self, request: Any, from_: From) -> Reply | NoReply | Stop:
        kind = request[0]
        core = self.core
        if kind == "track":
            result, effects = core.track(*request[1:])
            self._perform(effects)
            return Reply(result)
        if kind == "untrack":
            self._perform(core.untrack(*request[1:]))
            return Reply(None)
        if kind == "untrack_all":
            self._perform(core.leave_pid(request[1]))
            return Reply(None)
        if kind == "update":
            result, effects = core.update(*request[1:])
            self._perform(effects)
            return Reply(result)
        if kind == "leave":
            self._perform(core.leave())
            return Reply(None)
        return await super().handle_call(request, from_)

    # -- messages ------------------------------------------------------------------------------

    async def handle_info(self, message: Any) -> None:
        kind = type(message)
        if kind is Exit:
            # A tracked process exited (the parent's Exit is handled by GenServer).
            self._perform(self.core.leave_pid(message.pid))
        elif message == "flush_diffs":
            for diffs in self.core.flush():
                self.tracker.handle_diff(diffs)
        elif message == "heartbeat":
            self._perform(self.core.tick(monotonic()))
            send_after(self.settings.broadcast_period, self._pid, "heartbeat")
        elif kind in _REPLICA_MESSAGES:
            self._perform(self.core.receive(message, monotonic()))


_REPLICA_MESSAGES = frozenset((Heartbeat, TransferReq, TransferAck, GracefulPermdown))


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
