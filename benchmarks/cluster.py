"""Benchmarks of alight.cluster between two OS-process nodes, against raw pyzmq.

Run ``python benchmarks/cluster.py`` for a table, ``--json`` for one JSON object per
figure and line (``bench``, ``value``, ``unit``, ``baseline``, ``baseline_value``,
``ratio``, plus ``target``, ``met`` and ``detail``), ``--quick`` for small counts (a smoke
test of a few seconds). A figure that cannot be measured yet is not printed; the reason
goes to stderr. ``ratio`` is ``value / baseline_value``.

Every node is its own process (``_cluster_node.py``): node A pinned to CPU 0, node B to
CPU 1 (``os.sched_setaffinity``); this process only starts, waits and kills (each child
in its own process group, killed on the way out, errors included). Each run uses a fresh
random cluster secret. The baseline is measured in the same run: raw pyzmq between two
processes pinned the same way, DEALER -> ROUTER, sync sockets, no CurveZMQ, *unbatched*
(one ZeroMQ message per message, ZeroMQ's I/O thread batching the writes as it does;
alight batches up to 4096 messages per frame itself), payload bytes of the size of the
pickled alight message (a channel ``Broadcast`` with a 100-byte body, ~195 bytes).

- ``cluster.broadcast`` (messages/s): a process on A broadcasts N messages on a topic in
  bursts of 1,000 (yielding between bursts); the clock stops when B has counted them
  all. With the cluster PubSub adapter (``alight.cluster.pubsub.ClusterAdapter``), the
  broadcast goes through ``PubSub.broadcast`` and B's subscribers count deliveries;
  without it, the path is remote ``send`` to a counting process on B (``detail.path``
  says which). Target >= 0.5x the raw pyzmq rate. Best of R runs.
- ``cluster.remote_send`` (messages/s): the same with remote ``send`` always.
- ``cluster.rtt_p99`` (ms): ping-pong between a process on A and an echo process on B;
  p99 over N round trips (the first tenth warms up). Baseline: raw DEALER/ROUTER.
- ``cluster.down_detection`` (s): B is SIGKILLed; time until A's `monitor_nodes`
  subscriber gets `Nodedown` (default heartbeat settings). Baseline: the configured bound
  ``down_after + heartbeat_interval``; target <= 5 s.
- ``cluster.fanout_2nodes`` (deliveries/s): ``_loadgen.py fanout`` (``channel_app.py``)
  against two ``alight node`` processes sharing one HTTP port (``--reuse-port``, the
  second seeded with the first, cluster PubSub attached by the endpoint), pinned to CPU 0
  and 1; baseline: one ``alight node`` on CPU 0 with the same clients. The load generator
  is NOT pinned: it shares both cores with the servers. Target > 1.0x. Skipped (reason
  on stderr) without cluster PubSub.
- ``cluster.presence_convergence`` (s): a process on A tracks 10,000 presences on one
  topic (one ``Tracker.track`` call each) in a tracker replicating through the cluster
  (`ClusterReplicator`, cluster timing: ``broadcast_period`` 0.5 s); the clock runs from
  the first ``track`` until B's tracker lists all 10,000 (polled every 5 ms). Baseline:
  the time A itself took to track them (``detail.value.tracking_seconds``); ``ratio`` is
  thus >= 1, and ``value - baseline`` is the replication lag. No target.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alight.benchmarks._procs import CPUS, BenchError, Child, can_pin, free_port, kill_group, pinned, started
from alight.benchmarks._report import Figure, argument_parser, emit, exit_on_sigterm

ROOT = Path(__file__).resolve().parents[1]
NODE = ROOT / "benchmarks" / "_cluster_node.py"
CPU_A, CPU_B = CPUS
DOWN_TARGET = 5.0


# -- processes ------------------------------------------------------------------------------


def child(role: str, cpu: int, secret: str, *options: str) -> contextlib.AbstractContextManager[Child]:
    """Start ``_cluster_node.py ROLE`` on ``cpu``, wait for ``ready``, kill its group afterwards."""
    return started(pinned([sys.executable, str(NODE), role, *options], cpu), role, "ready", secret)


# -- figures -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    messages: int
    round_trips: int
    repeats: int

    fanout_clients: int
    broadcasts: int
    fanout_rounds: int
    presences: int


FULL = Counts(
    messages=200_000,
    round_trips=20_000,
    repeats=3,
    fanout_clients=1000,
    broadcasts=200,
    fanout_rounds=3,
    presences=10_000,
)
QUICK = Counts(
    messages=30_000,
    round_trips=1_000,
    repeats=1,
    fanout_clients=100,
    broadcasts=20,
    fanout_rounds=1,
    presences=1_000,
)
APP = "benchmarks.channel_app:app"
CLUSTER_SETTLE = 1.0
"""Seconds given to the second node to finish its handshake with the first."""


def cluster_pubsub_missing() -> str | None:
    """Why the broadcast cannot go through cluster PubSub, or None when it can."""
    try:
        module = importlib.import_module("alight.cluster.pubsub")
    except ImportError as error:
        return f"alight.cluster.pubsub cannot be imported ({error})"
    if not hasattr(module, "ClusterAdapter"):
        return "alight.cluster.pubsub has no ClusterAdapter"
    return None


class Bench:
    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.secret = secrets.token_hex(32)

    def _best(self, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        runs = [measure() for _ in range(self.counts.repeats)]
        return max(runs, key=lambda run: float(run["per_s"]))

    def _alight(self, mode: str, count: int, *sink_options: str) -> dict[str, Any]:
        with child("sink", CPU_B, self.secret, "--name", "b@127.0.0.1", *sink_options) as sink:
            address = sink.address()
            options = ("--name", "a@127.0.0.1", "--seed", address, "--mode", mode, "--count", str(count))
            with child("driver", CPU_A, self.secret, *options) as driver:
                result = driver.result()
        if mode in ("send", "pubsub") and result["received"] != result["sent"]:
            raise BenchError(f"{mode}: {result['sent']} sent, {result['received']} received")
        return result

    def _raw(self, mode: str, count: int) -> dict[str, Any]:
        with child("zmq_sink", CPU_B, self.secret) as sink:
            address = sink.address()
            with child("zmq_send", CPU_A, self.secret, "--seed", address, "--mode", mode, "--count", str(count)) as s:
                return s.result()

    def throughput(self, figures: list[Figure]) -> None:
        n = self.counts.messages
        raw = self._best(lambda: self._raw("send", n))
        base = "raw pyzmq DEALER->ROUTER, unbatched, no Curve"
        sent = self._best(lambda: self._alight("send", n))
        figures.append(_rate("cluster.remote_send", sent, raw, base, "-", None, {"path": "remote send"}))
        missing = cluster_pubsub_missing()
        if missing is None:
            path = "cluster PubSub (ClusterAdapter), 4 subscribers on B"
            broadcast = self._best(lambda: self._alight("pubsub", n, "--pubsub", "--subscribers", "4"))
        else:
            print(f"cluster: cluster.broadcast measured with remote send: {missing}", file=sys.stderr)
            path = "remote send to a counting process on B (no cluster PubSub yet)"
            broadcast = sent
        met = float(broadcast["per_s"]) >= 0.5 * float(raw["per_s"])
        figures.append(_rate("cluster.broadcast", broadcast, raw, base, ">= 0.5x baseline", met, {"path": path}))

    def rtt(self, figures: list[Figure]) -> None:
        n = self.counts.round_trips
        raw = self._raw("rtt", n)
        mine = self._alight("rtt", n)
        figures.append(
            Figure(
                "cluster.rtt_p99",
                round(float(mine["p99_ms"]), 4),
                "ms",
                "raw pyzmq DEALER/ROUTER ping-pong",
                round(float(raw["p99_ms"]), 4),
                round(float(mine["p99_ms"]) / float(raw["p99_ms"]), 4),
                "-",
                None,
                {"value": mine, "baseline": raw},
            )
        )

    def presence_convergence(self, figures: list[Figure]) -> None:
        n = self.counts.presences
        result = self._alight("presence", n, "--presence")
        if result["listed"] != n:
            raise BenchError(f"presence: {n} tracked on A, {result['listed']} listed on B")
        seconds, tracking = float(result["seconds"]), float(result["tracking_seconds"])
        figures.append(
            Figure(
                "cluster.presence_convergence",
                round(seconds, 4),
                "s",
                f"tracking the {n} presences on A alone",
                round(tracking, 4),
                round(seconds / tracking, 4),
                "-",
                None,
                {"path": "Tracker + ClusterReplicator, cluster timing", "value": result},
            )
        )

    def down_detection(self, figures: list[Figure]) -> None:
        with child("sink", CPU_B, self.secret, "--name", "b@127.0.0.1") as sink:
            address = sink.address()
            options = ("--name", "a@127.0.0.1", "--seed", address, "--mode", "watch")
            with child("driver", CPU_A, self.secret, *options) as watcher:
                watcher.expect("up")
                killed_at = time.monotonic()
                kill_group(sink.proc, signal.SIGKILL)
                result = watcher.result()
        seconds = float(result["down_at"]) - killed_at
        bound = float(result["down_after"]) + float(result["heartbeat_interval"])
        figures.append(
            Figure(
                "cluster.down_detection",
                round(seconds, 4),
                "s",
                "configured bound: down_after + heartbeat_interval (defaults)",
                bound,
                round(seconds / bound, 4),
                f"<= {DOWN_TARGET} s",
                seconds <= DOWN_TARGET,
                {"down_after": result["down_after"], "heartbeat_interval": result["heartbeat_interval"]},
            )
        )

    def measure(self) -> list[Figure]:
        figures: list[Figure] = []
        self.throughput(figures)
        self.rtt(figures)
        self.presence_convergence(figures)
        self.down_detection(figures)
        missing = cluster_pubsub_missing()
        if missing is None:
            self.fanout(figures)
        else:
            skip("cluster.fanout_2nodes", f"needs cluster PubSub: {missing}")
        return figures

    def _node(self, name: str, port: int, cpu: int, *seeds: str) -> contextlib.AbstractContextManager[Child]:
        command = [sys.executable, "-m", "alight.cli", "node", "--name", name, "--app", APP, "--port", str(port)]
        command += ["--reuse-port", *(f"--seeds={seed}" for seed in seeds)]
        return started(pinned(command, cpu), name, "alight-node-ready", self.secret)

    def _loadgen(self, port: int) -> dict[str, Any]:
        c = self.counts
        limit = 60.0 + c.fanout_clients * c.broadcasts * c.fanout_rounds / 20_000
        command = [sys.executable, str(ROOT / "benchmarks" / "_loadgen.py"), "fanout"]
        command += ["--url", f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0", "--time-limit", str(limit)]
        command += ["--clients", str(c.fanout_clients), "--broadcasts", str(c.broadcasts)]
        command += ["--rounds", str(c.fanout_rounds)]
        with started(command, "load generator", "{", self.secret) as gen:
            report: dict[str, Any] = json.loads(gen.ready)
        if "error" in report:
            raise BenchError(f"load generator: {report['error']}")
        return report

    def fanout(self, figures: list[Figure]) -> None:
        port = free_port()
        with self._node("one@127.0.0.1", port, CPU_A):
            single = self._loadgen(port)
        port = free_port()
        with self._node("n1@127.0.0.1", port, CPU_A) as first:
            address = first.ready.rsplit("cluster_address=", 1)[1].strip()
            with self._node("n2@127.0.0.1", port, CPU_B, address):
                time.sleep(CLUSTER_SETTLE)
                pair = self._loadgen(port)
        value, base = float(pair["deliveries_per_s"]), float(single["deliveries_per_s"])
        figures.append(
            Figure(
                "cluster.fanout_2nodes",
                value,
                "deliveries/s",
                f"one alight node, same {self.counts.fanout_clients} clients",
                base,
                round(value / base, 4),
                "> 1.0x baseline",
                value > base,
                {
                    "path": "alight node x2, SO_REUSEPORT, cluster PubSub",
                    "cores": "nodes pinned to CPU 0 and 1 (the single node to CPU 0); the load generator "
                    "is not pinned and shares both cores with the servers",
                    "value": pair,
                    "baseline": single,
                },
            )
        )


def _rate(
    bench: str,
    mine: dict[str, Any],
    raw: dict[str, Any],
    baseline: str,
    target: str,
    met: bool | None,
    detail: dict[str, Any],
) -> Figure:
    value, base = float(mine["per_s"]), float(raw["per_s"])
    return Figure(
        bench,
        round(value, 1),
        "messages/s",
        baseline,
        round(base, 1),
        round(value / base, 4),
        target,
        met,
        {**detail, "value": mine, "baseline": raw},
    )


def skip(bench: str, reason: str) -> None:
    print(f"cluster: {bench} skipped: {reason}", file=sys.stderr)


# -- the report ----------------------------------------------------------------------------


def cores() -> str:
    if can_pin():
        return f"node A pinned to CPU {CPU_A}, node B to CPU {CPU_B} (os.sched_setaffinity)"
    return f"not pinned ({os.cpu_count()} CPUs)"


def _table(figures: list[Figure]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="alight.cluster benchmarks", caption=cores())
    for column in ("bench", "value", "baseline", "unit", "ratio", "target", "met", "path"):
        table.add_column(column, justify="left" if column in ("bench", "unit", "target", "path") else "right")
    for f in figures:
        met = "-" if f.met is None else ("yes" if f.met else "[red]no[/red]")
        table.add_row(
            f.bench.removeprefix("cluster."),
            f"{f.value:,.3f}" if f.unit != "messages/s" else f"{f.value:,.0f}",
            f"{f.baseline_value:,.3f}" if f.unit != "messages/s" else f"{f.baseline_value:,.0f}",
            f.unit,
            f"{f.ratio:.2f}",
            f.target,
            met,
            str(f.detail.get("path", "-")),
        )
    Console(width=max(Console().width, 130)).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    print(f"cluster: {cores()}", file=sys.stderr)
    try:
        figures = Bench(QUICK if args.quick else FULL).measure()
    except BenchError as error:
        print(f"cluster: {error}", file=sys.stderr)
        return 1
    emit(figures, args.json, lambda: _table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
