"""Benchmarks of the dashboard's sampling (issue 7) against a naive full process table.

Run ``python benchmarks/dashboard.py`` for a table, ``--json`` for one JSON object per
figure and line (``bench``, ``value``, ``unit``, ``baseline``, ``baseline_value``,
``ratio``), ``--quick`` for small counts (a smoke test).

A page that watches a node costs that node one snapshot per second. Each figure is
measured on a fresh `Node` running an endpoint with the dashboard, next to N idle
processes; the baseline, measured in the same run, is the naive process table a
dashboard without a bound would build: `process_info` of every process turned into a
row, sorted. ``ratio`` is ``value / baseline_value`` (lower is better).

- ``dashboard.snapshot_N`` (ms, median of several): ``call(collector, TakeSnapshot())``,
  everything the page gets (tree, the busiest 500 processes, topics, counters, rates).
  Baseline: the naive table of all N processes.
- ``dashboard.snapshot_bytes_N`` (bytes): the snapshot encoded as JSON, what travels
  to the page each second. Baseline: the naive table encoded as JSON.
- ``dashboard.snapshot_channels_N`` (ms): the same snapshot when the N processes are
  children of the endpoint's channels supervisor, as channels are (the tree walk asks
  it for ``which_children``, and it is linked to every one). Baseline: the naive table.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson

from alight.actors import ChildSpec, DynamicSupervisor, Node, call, process_info, processes, receive, spawn, spawn_link
from alight.benchmarks._report import Figure, argument_parser, emit
from alight.channels import Endpoint
from alight.channels.testing import start_endpoint
from alight.dashboard import Dashboard, TakeSnapshot
from alight.dashboard._snapshot import busiest, process_row

COLLECTOR = "endpoint.dashboard"


@dataclass(frozen=True, slots=True)
class Counts:
    sizes: tuple[int, ...]
    runs: int


FULL = Counts(sizes=(1_000, 10_000, 50_000), runs=9)
QUICK = Counts(sizes=(200,), runs=3)


def _figure(bench: str, value: float, unit: str, base: float) -> Figure:
    return Figure(bench, value, unit, "naive table", base, value / base if base else float("inf"))


async def _idle() -> None:
    await receive(lambda m: m == "never")


def _naive_table() -> list[dict[str, Any]]:
    rows = []
    for pid in processes():
        info = process_info(pid)
        if info is not None:
            rows.append(process_row(info))
    return busiest(rows, len(rows))


async def _measure(size: int, runs: int, supervised: bool = False) -> tuple[float, float, int, int]:
    app = Endpoint(check_origin=False)
    Dashboard(app)
    await start_endpoint(app)
    spec = ChildSpec(id="channel", start=lambda: spawn_link(_idle), restart="temporary")
    for _ in range(size):
        if supervised:
            await DynamicSupervisor.start_child(app.channel_supervisor, spec)
        else:
            spawn(_idle)
    snapshot = await call(COLLECTOR, TakeSnapshot(), timeout=None)  # warm up
    times, base_times = [], []
    for _ in range(runs):
        start = time.perf_counter()
        snapshot = await call(COLLECTOR, TakeSnapshot(), timeout=None)
        times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        table = _naive_table()
        base_times.append((time.perf_counter() - start) * 1000)
    assert snapshot["totals"]["processes"] >= size
    return (
        statistics.median(times),
        statistics.median(base_times),
        len(orjson.dumps(snapshot)),
        len(orjson.dumps(table)),
    )


def measure(counts: Counts) -> list[Figure]:
    figures = []
    for size in counts.sizes:
        node = Node("bench@localhost", watchdog_threshold=None)
        ms, base_ms, size_bytes, base_bytes = node.run(_measure, size, counts.runs)
        figures.append(_figure(f"dashboard.snapshot_{size}", ms, "ms", base_ms))
        figures.append(_figure(f"dashboard.snapshot_bytes_{size}", size_bytes, "bytes", base_bytes))
        node = Node("bench@localhost", watchdog_threshold=None)
        ms, base_ms, _, _ = node.run(_measure, size, counts.runs, True)
        figures.append(_figure(f"dashboard.snapshot_channels_{size}", ms, "ms", base_ms))
    return figures


def _table(figures: list[Figure]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="alight dashboard benchmarks")
    for column in ("bench", "value", "unit", "baseline", "baseline value", "ratio"):
        table.add_column(column, justify="right" if column in ("value", "baseline value", "ratio") else "left")
    for f in figures:
        table.add_row(f.bench, f"{f.value:,.2f}", f.unit, f.baseline, f"{f.baseline_value:,.2f}", f"{f.ratio:.2f}")
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
