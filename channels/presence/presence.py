"""Presence for channels: Phoenix.Presence on the `Tracker`.

Bind one to an endpoint (``Endpoint(presence=True)``, or ``MyPresence(endpoint)``
for a subclass with a `fetch` hook) and it starts with the endpoint's tree. In a
channel::

    async def join(self, topic, payload):
        send(self_pid(), "after_join")          # push is not allowed inside join
        return Ok()

    async def handle_info(self, message):
        if message == "after_join":
            presence = self.endpoint.presence
            await presence.track(self, self.assigns["user_id"], {"online_at": now()})
            self.push("presence_state", await presence.list(self.topic))

Every change (track, update, untrack, a tracked process exiting) reaches every
subscriber of the topic as a ``presence_diff`` broadcast on this node (fastlane:
encoded once per serializer), with the payload shapes of docs/protocol.md §6.2 that
phoenix.js's ``Presence`` expects. Diffs are batched: the tracker hands over the
changes of ``diff_period`` (50 ms) at once, and each batch makes one broadcast per
topic, so 10,000 joins are a handful of broadcasts, not 10,000 (Phoenix sends one
per change). A dispatcher process groups them by key, runs `fetch` and broadcasts,
one batch after another, off the tracker's shards (as Phoenix's ordered tasks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...actors import ChildSpec, Pid, Supervisor, receive, self_pid, spawn_link
from ..channel import Channel
from ..errors import ChannelError
from ..extension import Extension, Phase
from ..message import Encoded
from .tracker import Diffs, Meta, Replicator, Tracker, TrackerSettings

if TYPE_CHECKING:
    from ..endpoint import Endpoint

Presences = dict[str, dict[str, Any]]
"""``{key: {"metas": [meta, ...], ...what fetch adds}}``."""

CACHE_TOPICS = 1024
"""Topics whose grouped `list` is kept between calls (oldest evicted first)."""


class Presence(Extension):
    """Phoenix.Presence for ``endpoint``; see the module docstring.

    Subclass it and override `fetch` to enrich entries. ``settings`` and
    ``replicator`` go to the `Tracker` (defaults: Phoenix's, and a node alone).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        name: str | None = None,
        settings: TrackerSettings | None = None,
        replicator: Replicator | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name or f"{endpoint.name}.presence"
        self.tracker = Tracker(self.name, self._handle_diff, settings, replicator)
        self._dispatcher: Pid | None = None
        # topic -> (tracker version, grouped presences); read-only once built.
        self._cache: dict[str, tuple[int, Presences]] = {}
        self._encoded: dict[str, tuple[int, Encoded]] = {}
        self._fetches = type(self).fetch is not Presence.fetch
        endpoint.extend(self)

    # -- the extension ----------------------------------------------------------------------

    phase = Phase.STATE

    def installed(self, endpoint: Endpoint) -> None:
        endpoint.presence = self

    def child_specs(self, endpoint: Endpoint) -> Sequence[ChildSpec]:
        return [self.child_spec()]

    async def draining(self, endpoint: Endpoint) -> Sequence[Pid]:
        """The node drains: its presences leave every other node at once (a graceful
        permdown, `Tracker.leave`), not one by one as its connections close."""
        await self.tracker.leave()
        return ()

    # -- the hook ---------------------------------------------------------------------------

    async def fetch(self, topic: str, presences: Presences) -> Presences:
        """Enrich ``presences`` (``{key: {"metas": [...]}}``) before they are listed or
        broadcast; the default returns them unchanged. Runs on every `list` (in the
        caller) and on every diff (in the dispatcher, once for the joins and once for
        the leaves, as Phoenix does); may add keys next to ``metas`` but must keep
        ``metas``. It gets a fresh copy it may change."""
        return presences

    # -- API ----------------------------------------------------------------------------------

    async def track(self, target: Channel | Pid, *args: Any) -> str:
        """``track(channel, key, meta)`` (from the channel's own process: tracks it on
        its topic) or ``track(pid, topic, key, meta)``. Returns the meta's ``phx_ref``;
        raises `AlreadyTracked` if that (pid, topic, key) is tracked. ``pid`` is
        untracked when it exits."""
        pid, topic, (key, meta) = _target("track", target, args, 2)
        if not isinstance(meta, dict):
            raise ChannelError(f"presence meta must be a dict, got {meta!r}")
        return await self.tracker.track(pid, topic, str(key), meta)

    async def untrack(self, target: Channel | Pid, *args: Any) -> None:
        """``untrack(channel, key)`` or ``untrack(pid, topic, key)``; also fine for a
        presence that is not tracked."""
        pid, topic, (key,) = _target("untrack", target, args, 1)
        await self.tracker.untrack(pid, topic, str(key))

    async def update(self, target: Channel | Pid, *args: Any) -> str:
        """``update(channel, key, meta_or_fn)`` or ``update(pid, topic, key,
        meta_or_fn)``: replace the meta (``fn(old_meta)`` gets a copy); the new meta
        has a new ``phx_ref`` and ``phx_ref_prev``. Returns the new ref; raises
        `NoPresence`."""
        pid, topic, (key, change) = _target("update", target, args, 2)
        if not (isinstance(change, dict) or callable(change)):
            raise ChannelError(f"presence update takes a dict or a function, got {change!r}")
        return await self.tracker.update(pid, topic, str(key), change)

    async def list(self, topic: str | Channel) -> Presences:
        """``{key: {"metas": [...]}}`` of ``topic`` after `fetch`: the
        ``presence_state`` payload. Without a `fetch` override the same dict is
        shared by every caller until the topic changes: treat it as read-only."""
        name = topic.topic if isinstance(topic, Channel) else topic
        grouped = self._grouped(name)
        if not self._fetches:
            return grouped
        return await self.fetch(name, _copy(grouped))

    async def state(self, topic: str | Channel) -> Encoded:
        """The ``presence_state`` payload of ``topic``, encoded once per change of the
        topic and shared by every push until the next change (a big topic's state is
        not re-encoded for each joiner): ``self.push("presence_state", await
        presence.state(self))``. With a `fetch` override it is encoded per call."""
        name = topic.topic if isinstance(topic, Channel) else topic
        if self._fetches:
            return Encoded(await self.list(name))
        version = self.tracker.version(name)
        cached = self._encoded.get(name)
        if cached is not None and cached[0] == version:
            return cached[1]
        encoded = Encoded(self._grouped(name))
        cache = self._encoded
        cache.pop(name, None)
        if len(cache) >= CACHE_TOPICS:
            del cache[next(iter(cache))]
        cache[name] = (version, encoded)
        return encoded

    async def get_by_key(self, topic: str | Channel, key: str) -> dict[str, Any] | None:
        """The entry of ``key`` (``{"metas": [...]}`` after `fetch`), or None when the
        key has no presence (Phoenix returns ``[]``)."""
        name = topic.topic if isinstance(topic, Channel) else topic
        metas = [meta for _pid, meta in self.tracker.get_by_key(name, str(key))]
        if not metas:
            return None
        fetched = await self.fetch(name, {str(key): {"metas": metas}}) if self._fetches else None
        return fetched.get(str(key)) if fetched is not None else {"metas": metas}

    # -- the processes -----------------------------------------------------------------------------

    def child_spec(self) -> ChildSpec:
        """The dispatcher and the tracker's shards, under a one_for_one supervisor."""
        presence = self

        async def start_dispatcher() -> Pid:
            pid = spawn_link(presence._dispatch)
            presence._dispatcher = pid
            return pid

        async def start() -> Pid:
            children = [ChildSpec(id="dispatcher", start=start_dispatcher), presence.tracker.child_spec()]
            return await Supervisor.start_link(children, strategy="one_for_one", name=None)

        return ChildSpec(id=("presence", self.name), start=start, type="supervisor", shutdown="infinity")

    def _handle_diff(self, diffs: Diffs) -> None:
        """Called in a tracker shard: hand the batch to the dispatcher."""
        dispatcher = self._dispatcher
        if dispatcher is not None:
            self.endpoint.node.send(dispatcher, _DiffBatch(diffs))

    async def _dispatch(self) -> None:
        """The dispatcher's body: one ``presence_diff`` per topic per batch, in order."""
        while True:
            batch: _DiffBatch = await receive(_DiffBatch)
            for topic, (joins, leaves) in batch.diffs.items():
                joined, left = _group(joins), _group(leaves)
                if self._fetches:
                    joined = await self.fetch(topic, joined) if joined else joined
                    left = await self.fetch(topic, left) if left else left
                self.endpoint.local_broadcast(topic, "presence_diff", {"joins": joined, "leaves": left})

    def _grouped(self, topic: str) -> Presences:
        version = self.tracker.version(topic)
        cached = self._cache.get(topic)
        if cached is not None and cached[0] == version:
            return cached[1]
        grouped = _group(self.tracker.list(topic))
        cache = self._cache
        cache.pop(topic, None)
        if len(cache) >= CACHE_TOPICS:
            del cache[next(iter(cache))]
        cache[topic] = (version, grouped)
        return grouped


class _DiffBatch:
    __slots__ = ("diffs",)

    def __init__(self, diffs: Diffs) -> None:
        self.diffs = diffs


def _group(entries: list[tuple[str, Meta]]) -> Presences:
    grouped: Presences = {}
    for key, meta in entries:
        entry = grouped.get(key)
        if entry is None:
            grouped[key] = {"metas": [meta]}
        else:
            entry["metas"].append(meta)
    return grouped


def _copy(presences: Presences) -> Presences:
    return {key: {**entry, "metas": [dict(meta) for meta in entry["metas"]]} for key, entry in presences.items()}


def _target(action: str, target: Channel | Pid, args: tuple[Any, ...], rest: int) -> tuple[Pid, str, tuple[Any, ...]]:
    """(pid, topic, remaining args) of ``action(channel, ...)`` or ``action(pid, topic, ...)``."""
    if isinstance(target, Channel):
        if len(args) != rest:
            raise TypeError(f"{action}(channel, ...) takes {rest} more arguments, got {len(args)}")
        return self_pid(), target.topic, args
    if isinstance(target, Pid):
        if len(args) != rest + 1 or not isinstance(args[0], str):
            raise TypeError(f"{action}(pid, topic, ...) takes a topic and {rest} more arguments, got {args!r}")
        return target, args[0], args[1:]
    raise TypeError(f"{action} takes a Channel or a Pid first, not {target!r}")


__all__ = ["CACHE_TOPICS", "Presence", "Presences"]
