"""Client-side Presence, following phoenix.js (docs/protocol.md §6.4).

`sync_state` and `sync_diff` are pure: they take a state and return a new one, never
mutating their arguments, and report joins and leaves through optional callbacks with
phoenix.js's signatures ``on_join(key, current, new)`` and ``on_leave(key, current, left)``.
`Presence` wires them to a channel's ``presence_state`` / ``presence_diff`` events.

A state maps each key to ``{"metas": [{..., "phx_ref": ...}, ...], ...}``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .message import Message

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["Presence", "State", "list_presences", "sync_diff", "sync_state"]

State = dict[str, dict[str, Any]]
"""Presences by key: ``{key: {"metas": [meta, ...], ...}}``."""
OnJoin = Callable[[str, "dict[str, Any] | None", "dict[str, Any]"], object]
OnLeave = Callable[[str, "dict[str, Any]", "dict[str, Any]"], object]
T = TypeVar("T")


def _refs(presence: dict[str, Any]) -> set[Any]:
    return {meta.get("phx_ref") for meta in presence.get("metas", [])}


def sync_state(
    current: State, new_state: State, on_join: OnJoin | None = None, on_leave: OnLeave | None = None
) -> State:
    """The state after a ``presence_state`` push (phoenix.js ``Presence.syncState``):
    keys missing from ``new_state`` leave, metas are compared by ``phx_ref``, new refs
    join and missing refs leave; the result is `sync_diff` of those joins and leaves."""
    joins: State = {}
    leaves: State = {}
    for key, presence in current.items():
        if key not in new_state:
            leaves[key] = presence
    for key, new_presence in new_state.items():
        current_presence = current.get(key)
        if current_presence is None:
            joins[key] = new_presence
            continue
        new_refs, cur_refs = _refs(new_presence), _refs(current_presence)
        joined = [m for m in new_presence.get("metas", []) if m.get("phx_ref") not in cur_refs]
        left = [m for m in current_presence.get("metas", []) if m.get("phx_ref") not in new_refs]
        if joined:
            joins[key] = {**new_presence, "metas": joined}
        if left:
            leaves[key] = {**current_presence, "metas": left}
    return sync_diff(current, {"joins": joins, "leaves": leaves}, on_join, on_leave)


def sync_diff(
    current: State, diff: Mapping[str, Any], on_join: OnJoin | None = None, on_leave: OnLeave | None = None
) -> State:
    """The state after a ``presence_diff`` (phoenix.js ``Presence.syncDiff``). Joins
    first: the key becomes a copy of the joined presence (extra keys from ``fetch`` are
    kept) with the previous metas whose ``phx_ref`` is not in the join prepended. Then
    leaves: metas whose ``phx_ref`` is in the leave are removed, and a key with no metas
    left is deleted. ``on_join`` / ``on_leave`` run once per key, joins before leaves."""
    state = copy.deepcopy(current)
    diff = copy.deepcopy(diff)
    for key, new_presence in diff.get("joins", {}).items():
        current_presence = state.get(key)
        state[key] = copy.deepcopy(new_presence)
        if current_presence is not None:
            joined_refs = _refs(state[key])
            kept = [m for m in current_presence.get("metas", []) if m.get("phx_ref") not in joined_refs]
            state[key]["metas"] = kept + state[key].get("metas", [])
        if on_join is not None:
            on_join(key, current_presence, new_presence)
    for key, left_presence in diff.get("leaves", {}).items():
        current_presence = state.get(key)
        if current_presence is None:
            continue
        to_remove = _refs(left_presence)
        current_presence["metas"] = [m for m in current_presence.get("metas", []) if m.get("phx_ref") not in to_remove]
        if on_leave is not None:
            on_leave(key, current_presence, left_presence)
        if not current_presence["metas"]:
            del state[key]
    return state


def list_presences(state: State, chooser: Callable[[str, dict[str, Any]], T] | None = None) -> list[Any]:
    """phoenix.js ``Presence.list``: ``chooser(key, presence)`` for each key, in
    insertion order (the presence itself without a chooser)."""
    if chooser is None:
        return list(state.values())
    return [chooser(key, presence) for key, presence in state.items()]


class Presence:
    """The presences of one channel, kept in sync from its ``presence_state`` and
    ``presence_diff`` events (phoenix.js ``new Presence(channel)``).

    Until a ``presence_state`` arrives for the channel's current join, diffs are queued
    and applied right after it, so either order after a (re)join works. Register
    callbacks with `on_join`, `on_leave` and `on_sync`; read with `list` or `state`.
    """

    def __init__(self, channel: Channel, state_event: str = "presence_state", diff_event: str = "presence_diff"):
        self.state: State = {}
        """The current presences; replaced (never mutated) on every sync."""
        self._channel = channel
        self._join_ref: str | None = None
        self._pending_diffs: list[Mapping[str, Any]] = []
        self._on_join: OnJoin | None = None
        self._on_leave: OnLeave | None = None
        self._on_sync: Callable[[], object] | None = None
        channel.on(state_event, self._handle_state)
        channel.on(diff_event, self._handle_diff)

    def on_join(self, callback: OnJoin) -> None:
        """Call ``callback(key, current_or_None, new_presence)`` for every join."""
        self._on_join = callback

    def on_leave(self, callback: OnLeave) -> None:
        """Call ``callback(key, current, left_presence)`` for every leave."""
        self._on_leave = callback

    def on_sync(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` after every applied state or diff."""
        self._on_sync = callback

    def list(self, chooser: Callable[[str, dict[str, Any]], T] | None = None) -> list[Any]:
        """The presences, through ``chooser(key, presence)`` if given (see `list_presences`)."""
        return list_presences(self.state, chooser)

    def in_pending_sync_state(self) -> bool:
        """Whether no ``presence_state`` has arrived yet for the channel's current join."""
        return self._join_ref is None or self._join_ref != self._channel.join_ref

    def _handle_state(self, message: Message) -> None:
        self._join_ref = self._channel.join_ref
        self.state = sync_state(self.state, message.payload, self._on_join, self._on_leave)
        for diff in self._pending_diffs:
            self.state = sync_diff(self.state, diff, self._on_join, self._on_leave)
        self._pending_diffs = []
        if self._on_sync is not None:
            self._on_sync()

    def _handle_diff(self, message: Message) -> None:
        if self.in_pending_sync_state():
            self._pending_diffs.append(message.payload)
            return
        self.state = sync_diff(self.state, message.payload, self._on_join, self._on_leave)
        if self._on_sync is not None:
            self._on_sync()
