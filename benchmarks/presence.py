"""Benchmarks of presence (issue 4) against a plain dict-of-dicts presence table.

Run ``python benchmarks/presence.py`` for a table, ``--json`` for one JSON object per
figure and line (``bench``, ``value``, ``unit``, ``baseline``, ``baseline_value``,
``ratio``, plus ``target`` and ``met``), ``--quick`` for small counts (a smoke test).

The baseline is measured in the same run: ``{topic: {key: {pid: meta}}}`` updated and
read in place, with no CRDT, no processes and no refs. ``ratio`` is ``value /
baseline_value`` (times and bytes: lower is better). How each figure is measured:

- ``presence.track_10000`` (s): 10,000 idle processes tracked in one topic with
  ``await presence.track(pid, topic, key, meta)`` (a call to the tracker shard each,
  which links the pid, stamps a ``phx_ref`` and queues the diff), on an endpoint with
  presence on a `Node`; the clock stops when the last diff batch has been broadcast.
  Baseline: 10,000 dict insertions with a ref string each.
- ``presence.list_N`` (ms, median of several calls): ``await presence.list(topic)``
  of a topic with N presences, *cold*: the per-topic cache is cleared before each
  call, so each call groups the whole topic (a warm call returns the cached dict).
  The presences are put straight into the shard's state (N = 100,000 tracked
  through calls would only measure `track` again). Baseline: building
  ``{key: {"metas": [...]}}`` from the dict table.
- ``presence.memory`` (bytes per presence): tracemalloc's growth for N presences in
  a tracker `State` (100,000; meta ``{"device", "phx_ref"}``), the metas included.
  Baseline: the same metas in the dict table.
- ``presence.merge`` (ms, median): a heartbeat delta of 1,000 joins of a remote
  replica merged into a state that holds 100,000 presences of that replica.
  Baseline: ``dict.update`` of 1,000 entries into a 100,000-entry dict.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alight.actors import Node, current_node, receive, self_pid, spawn, start_child
from alight.benchmarks._report import Figure, argument_parser, emit
from alight.channels import Endpoint
from alight.channels.presence._state import Replica, State
from alight.channels.presence.tracker import make_phx_ref

TOPIC = "room:bench"


@dataclass(frozen=True, slots=True)
class Counts:
    track: int
    lists: tuple[int, ...]
    list_calls: int
    memory: int
    merge_state: int
    merge_delta: int
    merge_runs: int


FULL = Counts(10_000, (1_000, 10_000, 100_000), 21, 100_000, 100_000, 1_000, 11)
QUICK = Counts(1_000, (1_000, 10_000, 100_000), 3, 10_000, 10_000, 1_000, 3)


def _figure(bench: str, value: float, unit: str, base: float, target: str, met: bool) -> Figure:
    ratio = value / base if base else float("inf")
    return Figure(bench, value, unit, "dict of dicts", base, ratio, target, met)


def _median_ms(fn: Callable[[], Any], runs: int, setup: Callable[[], Any] | None = None) -> float:
    times = []
    for _ in range(runs):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


# -- track ----------------------------------------------------------------------------------


async def _idle() -> None:
    await receive(lambda m: m == "stop")


async def _track(count: int) -> float:
    app = Endpoint(check_origin=False, presence=True, name="bench")
    await start_child(current_node().root, app.child_spec())
    presence = app.presence
    assert presence is not None
    pids = [spawn(_idle) for _ in range(count)]
    app.pubsub.subscribe(self_pid(), TOPIC)
    start = time.perf_counter()
    for n, pid in enumerate(pids):
        await presence.track(pid, TOPIC, f"user{n}", {"device": "bench"})
    joined = 0
    while joined < count:
        diff = await receive(lambda m: getattr(m, "event", None) == "presence_diff", 10.0)
        joined += len(diff.payload["joins"])
    return time.perf_counter() - start


def _track_baseline(count: int) -> float:
    table: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    start = time.perf_counter()
    for n in range(count):
        meta = {"device": "bench", "phx_ref": make_phx_ref(0)}
        table.setdefault(TOPIC, {}).setdefault(f"user{n}", {})[n] = meta
    return time.perf_counter() - start


# -- list -----------------------------------------------------------------------------------


async def _list(sizes: tuple[int, ...], calls: int) -> dict[int, float]:
    results: dict[int, float] = {}
    for size in sizes:
        app = Endpoint(check_origin=False, presence=True, name=f"bench{size}")
        await start_child(current_node().root, app.child_spec())
        presence = app.presence
        assert presence is not None
        shard = presence.tracker._shards[0]
        assert shard is not None
        for n in range(size):
            shard.state.join(n, TOPIC, f"user{n}", {"device": "bench", "phx_ref": make_phx_ref(0)})
        times = []
        for _ in range(calls):
            presence._cache.clear()
            start = time.perf_counter()
            listed = await presence.list(TOPIC)
            times.append((time.perf_counter() - start) * 1000)
            assert len(listed) == size
        results[size] = statistics.median(times)
    return results


def _list_baseline(size: int, calls: int) -> float:
    table = {f"user{n}": {n: {"device": "bench", "phx_ref": make_phx_ref(0)}} for n in range(size)}
    return _median_ms(lambda: {key: {"metas": list(by_pid.values())} for key, by_pid in table.items()}, calls)


# -- memory and merge -------------------------------------------------------------------------


def _memory(count: int, build: Callable[[int], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build(count)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / count


def _state_of(count: int) -> State:
    state = State(Replica("bench@localhost", 1))
    for n in range(count):
        state.join(n, TOPIC, f"user{n}", {"device": "bench", "phx_ref": make_phx_ref(0)})
    return state


def _dicts_of(count: int) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
    table: dict[str, dict[str, dict[int, dict[str, Any]]]] = {TOPIC: {}}
    topic = table[TOPIC]
    for n in range(count):
        topic[f"user{n}"] = {n: {"device": "bench", "phx_ref": make_phx_ref(0)}}
    return table


def _merge(state_size: int, delta_size: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        remote = _state_of(state_size)
        local = State(Replica("local@localhost", 1))
        local.replica_up(remote.replica)
        local.merge(remote.take_delta())
        for n in range(state_size, state_size + delta_size):
            remote.join(n, TOPIC, f"user{n}", {"device": "bench", "phx_ref": make_phx_ref(0)})
        delta = remote.take_delta()
        start = time.perf_counter()
        joins, _leaves = local.merge(delta)
        times.append((time.perf_counter() - start) * 1000)
        assert len(joins) == delta_size
    return statistics.median(times)


def _merge_baseline(state_size: int, delta_size: int, runs: int) -> float:
    table = _dicts_of(state_size)[TOPIC]
    delta = {f"user{n}": {n: {"device": "bench"}} for n in range(state_size, state_size + delta_size)}
    return _median_ms(lambda: table.update(delta), runs)


# -- the report -------------------------------------------------------------------------------


def measure(counts: Counts) -> list[Figure]:
    figures = []
    node = Node("bench@localhost", watchdog_threshold=None)
    value = node.run(_track, counts.track)
    figures.append(_figure("presence.track_10000", value, "s", _track_baseline(counts.track), "< 1 s", value < 1.0))
    listed = Node("bench@localhost", watchdog_threshold=None).run(_list, counts.lists, counts.list_calls)
    for size in counts.lists:
        base = _list_baseline(size, counts.list_calls)
        target, met = ("< 20 ms", listed[size] < 20.0) if size == 10_000 else ("-", True)
        figures.append(_figure(f"presence.list_{size}", listed[size], "ms", base, target, met))
    value = _memory(counts.memory, _state_of)
    base = _memory(counts.memory, _dicts_of)
    figures.append(_figure("presence.memory", value, "bytes", base, "<= 1024 B", value <= 1024))
    value = _merge(counts.merge_state, counts.merge_delta, counts.merge_runs)
    base = _merge_baseline(counts.merge_state, counts.merge_delta, counts.merge_runs)
    figures.append(_figure("presence.merge", value, "ms", base, "-", True))
    return figures


def _table(figures: list[Figure]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="alight presence benchmarks")
    for column in ("bench", "value", "unit", "baseline", "baseline value", "ratio", "target", "met"):
        table.add_column(column, justify="right" if column in ("value", "baseline value", "ratio") else "left")
    for f in figures:
        table.add_row(
            f.bench,
            f"{f.value:,.3f}",
            f.unit,
            f.baseline,
            f"{f.baseline_value:,.3f}",
            f"{f.ratio:.2f}",
            f.target,
            "yes" if f.met else "[red]no[/red]",
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    args = parser.parse_args(argv)
    figures = measure(QUICK if args.quick else FULL)
    emit(figures, args.json, lambda: _table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Counts", "Figure", "main", "measure"]
