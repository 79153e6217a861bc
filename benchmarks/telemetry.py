"""Benchmarks of telemetry: the cost of an event, and of metrics on a channel fan-out.

Run ``python benchmarks/telemetry.py`` for a table, ``--json`` for one JSON object per
figure and line (``bench``, ``value``, ``unit``, ``baseline``, ``baseline_value``,
``ratio``, plus ``detail``), ``--quick`` for small counts (a smoke test). ``ratio`` is
``value / baseline_value``; every baseline is measured in the same run.

- ``telemetry.execute_no_handler``, ``telemetry.execute_one_handler`` and
  ``telemetry.has_handlers`` (ns/call): ``node.telemetry.execute(event, measurements,
  metadata)`` with no handler attached, with one no-op handler, and the
  ``has_handlers(event)`` check emitters make before building metadata. Baseline: a
  bare call of a no-op Python function with the same three arguments. Each is the
  best of several timed loops of N calls (``time.perf_counter_ns``), interleaved.
- ``telemetry.fanout_metrics`` (deliveries/s): the channel fan-out of
  ``benchmarks/channels.py`` (its servers, pinning and load generator, reused as they
  are) against ``benchmarks/channel_app.py`` served with `EndpointMetrics`
  (``:metered``: one telemetry event and two counter increments per broadcast). Baseline:
  the same app with metrics off (``:app``), each on a fresh server process, one
  after the other.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from alight.actors import Node
from alight.benchmarks._report import Figure, argument_parser, emit, exit_on_sigterm
from alight.benchmarks.channels import BenchError, Server, cores, loadgen, server
from alight.telemetry import CHANNEL_HANDLED_IN, Event


@dataclass(frozen=True, slots=True)
class Counts:
    calls: int
    repeats: int
    clients: int
    broadcasts: int
    rounds: int


FULL = Counts(calls=1_000_000, repeats=5, clients=1000, broadcasts=200, rounds=3)
QUICK = Counts(calls=100_000, repeats=3, clients=100, broadcasts=20, rounds=1)


# -- the cost of one event ------------------------------------------------------------------

MEASUREMENTS = {"duration": 0.000_012}
METADATA = {"topic": "room:lobby", "event": "new_msg"}


def bare(event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """The baseline: a Python function that does nothing."""


def noop_handler(event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any], config: Any) -> None:
    """The one handler attached for ``execute_one_handler``."""


def _per_call(loop: Callable[[int], None], n: int) -> float:
    started = time.perf_counter_ns()
    loop(n)
    return (time.perf_counter_ns() - started) / n


def _calls(fn: Callable[[Event, Mapping[str, Any], Mapping[str, Any]], None]) -> Callable[[int], None]:
    def loop(n: int) -> None:
        event, measurements, metadata = CHANNEL_HANDLED_IN, MEASUREMENTS, METADATA
        for _ in range(n):
            fn(event, measurements, metadata)

    return loop


def _checks(has: Callable[[Event], bool]) -> Callable[[int], None]:
    def loop(n: int) -> None:
        event = CHANNEL_HANDLED_IN
        for _ in range(n):
            if has(event):
                raise AssertionError("no handler is attached")

    return loop


def measure_calls(counts: Counts) -> list[Figure]:
    silent, listened = Node("silent").telemetry, Node("listened").telemetry
    listened.attach("bench", CHANNEL_HANDLED_IN, noop_handler)
    loops = {
        "baseline": _calls(bare),
        "telemetry.execute_no_handler": _calls(silent.execute),
        "telemetry.execute_one_handler": _calls(listened.execute),
        "telemetry.has_handlers": _checks(silent.has_handlers),
    }
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(counts.repeats):
        for name, loop in loops.items():  # interleaved, so drift hits every loop alike
            best[name] = min(best[name], _per_call(loop, counts.calls))
    base = best.pop("baseline")
    detail = {"calls": counts.calls, "repeats": counts.repeats}
    return [
        Figure(
            name,
            round(ns, 2),
            "ns/call",
            "bare Python function call",
            round(base, 2),
            round(ns / base, 3),
            detail=detail,
        )
        for name, ns in best.items()
    ]


# -- metrics on a fan-out ---------------------------------------------------------------------


def _app(variant: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        spec = f"benchmarks.channel_app:{variant}"
        return [sys.executable, "-m", "alight.cli", "run", spec, "--port", str(port)]

    return command


def measure_fanout(counts: Counts) -> Figure:
    limit = 60.0 + counts.clients * counts.broadcasts * counts.rounds / 20_000

    def fan(target: Server) -> dict[str, Any]:
        return loadgen(
            "fanout", target, limit, clients=counts.clients, broadcasts=counts.broadcasts, rounds=counts.rounds
        )

    with server("alight, metrics off", _app("app")) as target:
        off = fan(target)
    with server("alight, metrics on", _app("metered")) as target:
        on = fan(target)
    value, base = float(on["deliveries_per_s"]), float(off["deliveries_per_s"])
    return Figure(
        "telemetry.fanout_metrics",
        value,
        "deliveries/s",
        "the same app, metrics off",
        base,
        round(value / base, 4),
        detail={"clients": counts.clients, "broadcasts": counts.broadcasts, "metrics_on": on, "metrics_off": off},
    )


# -- the report -------------------------------------------------------------------------------


def _table(figures: list[Figure]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="alight.telemetry benchmarks", caption=f"fan-out: {cores()}")
    for column in ("bench", "value", "baseline", "unit", "ratio"):
        table.add_column(column, justify="left" if column in ("bench", "unit") else "right")
    for f in figures:
        number = "{:,.1f}" if f.unit == "ns/call" else "{:,.0f}"
        table.add_row(
            f.bench.removeprefix("telemetry."),
            number.format(f.value),
            number.format(f.baseline_value),
            f.unit,
            f"{f.ratio:.2f}",
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    counts = QUICK if args.quick else FULL
    try:
        figures = [*measure_calls(counts), measure_fanout(counts)]
    except BenchError as error:
        print(f"telemetry: {error}", file=sys.stderr)
        return 1
    emit(figures, args.json, lambda: _table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
