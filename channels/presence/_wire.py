"""States and deltas as plain data, for replicators that may not pickle (a broker).

The mesh pickles a `TransferAck`'s state between authenticated nodes; a broker such as
Redis must carry data only (`alight.cluster.redis`). `to_data` turns a `State` or `Delta`
into tuples, lists and dicts of strings, ints, metas, pids and `Replica` values, and
`from_data` rebuilds it, checking every field's shape: a malformed value raises
`ValueError` naming what was wrong, never builds a half state. The codec of the
replicator encodes pids and replicas (they are its records).

Shapes (``entry`` is ``(topic, pid, key, meta, replica, clock)``, a value with its dot)::

    ("delta", start, end, [entry, ...], {replica: [clock, ...]})
    ("state", replica, context, {replica: [clock, ...]}, {replica: "up" | "down"}, [entry, ...])
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from ._state import Delta, Replica, State, _Entry

__all__ = ["from_data", "to_data"]


def to_data(value: State | Delta) -> tuple[Any, ...]:
    """``value`` as plain data (module docstring)."""
    if isinstance(value, Delta):
        entries = [_entry(entry) for entry in value.values.values()]
        clouds = {r: sorted(cloud) for r, cloud in value.clouds.items()}
        return ("delta", dict(value.start), dict(value.end), entries, clouds)
    entries = [_entry(entry) for by_dot in value._by_dot.values() for entry in by_dot.values()]
    return (
        "state",
        value.replica,
        dict(value._context),
        {r: sorted(cloud) for r, cloud in value._clouds.items()},
        dict(value._replicas),
        entries,
    )


def from_data(data: Any) -> State | Delta:
    """The `State` or `Delta` that `to_data` gave ``data`` for; `ValueError` if ``data``
    does not have one of its shapes."""
    if not isinstance(data, tuple | list) or not data:
        raise ValueError("a presence state is a non-empty sequence")
    kind = data[0]
    if kind == "delta" and len(data) == 5:
        _, start, end, entries, clouds = data
        built = [_make_entry(e) for e in _seq(entries, "entries")]
        return Delta(
            _clock(start, "start"),
            _clock(end, "end"),
            {(e.replica, e.clock): e for e in built},
            _clouds(clouds),
        )
    if kind == "state" and len(data) == 6:
        _, replica, context, clouds, replicas, entries = data
        state = State(_replica(replica))
        state._context = _clock(context, "context")
        state._clouds = _clouds(clouds)
        state._replicas = _statuses(replicas)
        state._down = frozenset(r for r, s in state._replicas.items() if s == "down")
        for entry in _seq(entries, "entries"):
            state._insert(_make_entry(entry))
        return state
    raise ValueError(f"not a presence state or delta: {str(kind)[:40]!r} with {len(data)} fields")


def _entry(entry: _Entry) -> tuple[Any, ...]:
    return (entry.topic, entry.pid, entry.key, entry.meta, entry.replica, entry.clock)


def _make_entry(data: Any) -> _Entry:
    if not isinstance(data, tuple | list) or len(data) != 6:
        raise ValueError("a presence entry is (topic, pid, key, meta, replica, clock)")
    topic, pid, key, meta, replica, clock = data
    if not isinstance(topic, str) or not isinstance(key, str):
        raise ValueError("a presence entry's topic and key are strings")
    if not isinstance(meta, dict) or not isinstance(pid, Hashable):
        raise ValueError("a presence entry's meta is a dict and its pid hashable")
    return _Entry(topic, pid, key, meta, _replica(replica), _int(clock))


def _replica(value: Any) -> Replica:
    if not isinstance(value, Replica) or not isinstance(value.name, str) or type(value.vsn) is not int:
        raise ValueError(f"not a replica: {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("clocks are non-negative integers")
    return value


def _seq(value: Any, what: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what} must be a sequence")
    return value


def _clock(value: Any, what: str) -> dict[Replica, int]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must map replicas to clocks")
    return {_replica(r): _int(c) for r, c in value.items()}


def _clouds(value: Any) -> dict[Replica, set[int]]:
    if not isinstance(value, dict):
        raise ValueError("clouds must map replicas to clocks")
    return {_replica(r): {_int(c) for c in _seq(cloud, "a cloud")} for r, cloud in value.items()}


def _statuses(value: Any) -> dict[Replica, Any]:
    if not isinstance(value, dict) or any(s not in ("up", "down") for s in value.values()):
        raise ValueError("replicas must map to 'up' or 'down'")
    return {_replica(r): s for r, s in value.items()}
