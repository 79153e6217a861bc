"""One tracker shard's decisions, as a sans-I/O core: events in, effects out.

Everything a shard decides lives here: its CRDT `State`, the up/down table of the other
replicas, clock sampling, delta generations and the netted `DiffBatch`. It imports no
asyncio and reads no clock: every event that needs the time takes ``now``, the
``phx_ref`` maker is injected, and what must happen outside (send a heartbeat, link a
pid, schedule a flush) comes back as typed effects. The shard process
(`tracker._Shard`) performs them; the deterministic simulation
(`alight.channels.presence.simulation`) performs them over a simulated network and
clock, so that the same code is checked under every schedule of faults.

A shard's own pause (SIGSTOP, a blocked loop, a laptop lid) is not the silence of the
others: when a tick comes much later than ``broadcast_period`` after the previous one,
the time this shard was not running is not counted against any replica (their silence
is measured in this shard's running time). Without that, a node resuming after a pause
longer than ``down_period`` took every other node for down and then, as their queued
heartbeats were read, for up again, and its clients saw presences leave and come back
for nothing. And the first tick after such a pause sends a heartbeat whatever its
silent-period count, so that the others hear from this shard as soon as it runs again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from ._diffs import DiffBatch, Diffs
from ._generations import DeltaGenerations
from ._replication import (
    ClockSampler,
    GracefulPermdown,
    Heartbeat,
    ReplicaMessage,
    ReplicaTable,
    TransferAck,
    TransferReq,
    Transition,
)
from ._settings import AlreadyTracked, NoPresence, TrackerError, TrackerSettings
from ._state import Change, Replica, State

__all__ = [
    "AckTransfer",
    "Effect",
    "FlushAfter",
    "Link",
    "Publish",
    "PublishPermdown",
    "RequestTransfer",
    "ShardCore",
    "Unlink",
]

Meta = dict[str, Any]
Pid = Hashable


# -- effects -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Publish:
    """Send ``heartbeat`` to every other replica (`Replicator.publish`)."""

    heartbeat: Heartbeat


@dataclass(frozen=True, slots=True)
class PublishPermdown:
    """Announce a graceful permdown to every other replica."""

    message: GracefulPermdown


@dataclass(frozen=True, slots=True)
class RequestTransfer:
    """Send ``request`` to replica ``to`` (`Replicator.transfer_req`)."""

    to: Replica
    request: TransferReq


@dataclass(frozen=True, slots=True)
class AckTransfer:
    """Send ``ack`` to replica ``to`` (`Replicator.transfer_ack`)."""

    to: Replica
    ack: TransferAck


@dataclass(frozen=True, slots=True)
class Link:
    """Link the shard to ``pid`` (it has its first presence here)."""

    pid: Pid


@dataclass(frozen=True, slots=True)
class Unlink:
    """Unlink the shard from ``pid`` (its last presence here left)."""

    pid: Pid


@dataclass(frozen=True, slots=True)
class FlushAfter:
    """Call `ShardCore.flush` in ``delay`` seconds (the diff batch has started)."""

    delay: float


Effect = Publish | PublishPermdown | RequestTransfer | AckTransfer | Link | Unlink | FlushAfter

_PAUSED_TICKS = 2.0
"""A tick later than this many ``broadcast_period`` after the last one means this
shard was not running in between (module docstring)."""


class ShardCore:
    """The state and decisions of one shard; see the module docstring.

    ``settings`` must be validated (`TrackerSettings.validated`). ``make_ref()`` gives
    each new presence its ``phx_ref``. Local writes (`track`, `untrack`, `leave_pid`,
    `update`), timer events (`tick`, `flush`) and messages from other replicas
    (`receive`) return the effects to perform, in order.
    """

    def __init__(
        self,
        settings: TrackerSettings,
        shard: str,
        replica: Replica,
        now: float,
        make_ref: Callable[[], str],
        next_version: Callable[[], int] | None = None,
    ) -> None:
        assert settings.down_period is not None, "validated settings"
        self.settings = settings
        self.shard = shard
        self.replica = replica
        self.make_ref = make_ref
        self.next_version = next_version or itertools.count(1).__next__
        self.versions: dict[str, int] = {}
        """topic -> a number that changes whenever its presences change (absent: none)."""
        self._touched: set[str] = set()
        self.state = State(replica)
        self.replicas = ReplicaTable(
            settings.down_period,
            settings.permdown_period,
            settings.broadcast_period * (settings.max_silent_periods + 1),
        )
        self.sampler = ClockSampler(settings.clock_sample_periods)
        self.generations = DeltaGenerations(settings.max_delta_sizes)
        self.batch = DiffBatch()
        self.flush_scheduled = False
        self.silent_periods = settings.max_silent_periods  # the first tick announces us
        self.last_tick = now
        self._transfer_refs = itertools.count(1)
        self.left = False
        """Whether this replica left the cluster (`leave`): silent from then on."""

    # -- reads -----------------------------------------------------------------------------

    def presences(self, topic: str) -> list[tuple[str, Meta, Pid]]:
        """``topic``'s presences now (replicas that are up), for a ``presence_state``:
        marks the topic observed for the diff batch (`DiffBatch.observe`)."""
        self.batch.observe(topic)
        return self.state.get_by_topic(topic)

    # -- local writes ------------------------------------------------------------------------

    def track(self, pid: Pid, topic: str, key: str, meta: Meta) -> tuple[str | TrackerError, list[Effect]]:
        state = self.state
        if state.get_meta(pid, topic, key) is not None:
            return AlreadyTracked(pid, topic, key), []
        effects: list[Effect] = [] if state.get_by_pid(pid) else [Link(pid)]
        ref = meta["phx_ref"] = self.make_ref()
        state.join(pid, topic, key, meta)
        self._join(topic, key, meta, effects)
        return ref, effects

    def untrack(self, pid: Pid, topic: str, key: str) -> list[Effect]:
        meta = self.state.leave(pid, topic, key)
        if meta is None:
            return []
        effects: list[Effect] = []
        self._leave(topic, key, meta, effects)
        if not self.state.get_by_pid(pid):
            effects.append(Unlink(pid))
        return effects

    def leave_pid(self, pid: Pid) -> list[Effect]:
        """Every presence of ``pid`` leaves (it exited, or `untrack` without a topic)."""
        left = self.state.leave_pid(pid)
        effects: list[Effect] = []
        for topic, key, meta in left:
            self._leave(topic, key, meta, effects)
        if left:
            effects.append(Unlink(pid))
        return effects

    def update(
        self, pid: Pid, topic: str, key: str, change: Meta | Callable[[Meta], Meta]
    ) -> tuple[str | TrackerError, list[Effect]]:
        old = self.state.get_meta(pid, topic, key)
        if old is None:
            return NoPresence(f"{pid} is not tracked under {key!r} on {topic!r}"), []
        new = dict(change(dict(old)) if callable(change) else change)
        new.pop("phx_ref_prev", None)
        new["phx_ref_prev"] = old["phx_ref"]
        ref = new["phx_ref"] = self.make_ref()
        # Phoenix's update is a leave and a join in one step: one diff with both.
        self.state.leave(pid, topic, key)
        self.state.join(pid, topic, key, new)
        effects: list[Effect] = []
        self._leave(topic, key, old, effects)
        self._join(topic, key, new, effects)
        return ref, effects

    # -- diffs -----------------------------------------------------------------------------------

    def _join(self, topic: str, key: str, meta: Meta, effects: list[Effect]) -> None:
        self.batch.join(topic, key, meta)
        self._changed(topic, effects)

    def _leave(self, topic: str, key: str, meta: Meta, effects: list[Effect]) -> None:
        self.batch.leave(topic, key, meta)
        self._changed(topic, effects)

    def _changed(self, topic: str, effects: list[Effect]) -> None:
        self.versions[topic] = self.next_version()
        self._touched.add(topic)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            effects.append(FlushAfter(self.settings.diff_period))

    def flush(self) -> list[Diffs]:
        """The ``diff_period`` is over: the netted diffs, as batches to hand out in order."""
        self.flush_scheduled = False
        for topic in self._touched:
            if not self.state.topic_size(topic):
                self.versions.pop(topic, None)
        self._touched = set()
        return self.batch.take()

    def _merged(self, changes: tuple[list[Change], list[Change]], effects: list[Effect]) -> None:
        joins, leaves = changes
        for topic, key, meta, _pid in joins:
            self._join(topic, key, meta, effects)
        for topic, key, meta, _pid in leaves:
            self._leave(topic, key, meta, effects)

    # -- the heartbeat tick (docs/protocol.md §7.4) -------------------------------------------------

    def tick(self, now: float) -> list[Effect]:
        """One tick: broadcast, sample clocks, detect downs. The caller ticks again
        ``broadcast_period`` later."""
        settings = self.settings
        state = self.state
        effects: list[Effect] = []
        if self.left:  # silent: local changes stay local, others' go on being merged
            self.last_tick = now
            if state.has_delta():
                state.take_delta()
            self._apply(self.replicas.detect_down(now), effects)
            return effects
        previous, self.last_tick = self.last_tick, now
        gap = now - previous
        paused = gap > _PAUSED_TICKS * settings.broadcast_period
        if paused:
            # We were not running: that time is nobody's silence, and the others must
            # hear from us at once (our silence is near their down_period).
            self.replicas.excuse(gap - settings.broadcast_period, now)
        if state.has_delta():
            delta = state.take_delta()
            self.generations.push(delta)
            effects.append(Publish(Heartbeat(self.shard, self.replica, delta, state.clocks())))
            self.silent_periods = 0
        elif paused or self.silent_periods >= settings.max_silent_periods:
            effects.append(Publish(Heartbeat(self.shard, self.replica, None, state.clocks())))
            self.silent_periods = 0
        else:
            self.silent_periods += 1
        clocks = state.clocks()
        for replica in self.sampler.tick(clocks):
            ref = next(self._transfer_refs)
            effects.append(RequestTransfer(replica, TransferReq(self.shard, ref, self.replica, clocks)))
        self._apply(self.replicas.detect_down(now), effects)
        return effects

    def shutdown(self, orderly: bool) -> list[Effect]:
        """The shard stops; an orderly stop with ``permdown_on_shutdown`` is announced
        (a crash stays silent: the restart is a new replica), unless it `left` already."""
        return self.leave() if orderly else []

    def leave(self) -> list[Effect]:
        """This replica leaves for good, before its node stops (a drain): with
        ``permdown_on_shutdown`` a graceful permdown is announced now, so that every other
        replica drops its presences at once, and from then on it says nothing (no
        heartbeat, delta or transfer: a word from it would bring it back, elsewhere, as
        a replica that is up). Local writes still change the local state and the diffs
        of this node's subscribers, and what the others say is still merged."""
        if self.left:
            return []
        self.left = True
        if self.settings.permdown_on_shutdown:
            return [PublishPermdown(GracefulPermdown(self.shard, self.replica))]
        return []

    def _apply(self, transitions: list[Transition], effects: list[Effect]) -> None:
        """Apply replica transitions to the state, batching the joins and leaves."""
        state = self.state
        for what, replica in transitions:
            if what == "up":
                self._merged((state.replica_up(replica), []), effects)
            elif what == "down":
                self._merged(([], state.replica_down(replica)), effects)
            else:
                # Permdown: forget it everywhere, so none of its values can come back
                # from a late delta or a stale generation (phoenix_pubsub#55/#60).
                if state.replicas.get(replica) == "up":
                    self._merged(([], state.replica_down(replica)), effects)
                if replica in state.replicas:
                    state.remove_down_replicas(replica)
                self.generations.remove_replica(replica)
                self.sampler.forget(replica)

    # -- messages from other replicas (docs/protocol.md §7.5) -----------------------------------------

    def receive(self, message: ReplicaMessage, now: float) -> list[Effect]:
        """A message from another replica's same-named shard."""
        if message.replica == self.replica:
            return []
        effects: list[Effect] = []
        if isinstance(message, Heartbeat):
            self._heartbeat(message, now, effects)
        elif isinstance(message, TransferReq):
            if not self.left:  # it asked before it heard we left: it will hear it
                self._transfer_req(message, effects)
        elif isinstance(message, TransferAck):
            self._transfer_ack(message, effects)
        else:
            self._apply(self.replicas.graceful_permdown(message.replica), effects)
        return effects

    def _heartbeat(self, heartbeat: Heartbeat, now: float, effects: list[Effect]) -> None:
        """Another replica is alive: status transitions, then its delta, clocks and generation."""
        replica = heartbeat.replica
        self._apply(self.replicas.heartbeat(replica, now), effects)
        if self.replicas.status(replica) is None:
            return  # it announced a graceful permdown: a late or duplicated heartbeat
        if heartbeat.delta is not None:
            self._merged(self.state.merge(heartbeat.delta), effects)
            self.generations.push(heartbeat.delta)
        self.sampler.heard(replica, heartbeat.clocks)

    def _transfer_req(self, request: TransferReq, effects: list[Effect]) -> None:
        """Answer with the smallest delta generation that brings the requester up to date,
        else the full state; either extracted for it (docs/protocol.md §7.5)."""
        generation = self.generations.find(request.clocks)
        answer = (
            self.state.extract(request.replica, request.clocks)
            if generation is None
            else generation.extract(request.replica, request.clocks)
        )
        effects.append(AckTransfer(request.replica, TransferAck(self.shard, request.ref, self.replica, answer)))

    def _transfer_ack(self, ack: TransferAck, effects: list[Effect]) -> None:
        """Merge what we asked for; a full state resets the generations (Phoenix's
        ``push_delta_generation`` of a normal-mode state), a delta extends them."""
        self._merged(self.state.merge(ack.state), effects)
        if isinstance(ack.state, State):
            self.generations.clear()
        else:
            self.generations.push(ack.state)
