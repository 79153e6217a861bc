"""Benchmarks of the actor runtime against the simplest possible mailbox.

Run ``python benchmarks/actors.py`` for a table, ``--json`` for one JSON object per
figure and line (``bench``, ``value``, ``unit``, ``baseline``, ``baseline_value``,
``ratio``, plus ``target`` and ``met``), ``--quick`` for small counts (a smoke test).

The baseline is measured in the same run, on the same kind of loop (uvloop): plain
asyncio tasks with one ``asyncio.Queue`` each as the mailbox. ``ratio`` is always
``value / baseline_value``: above 1 is better for rates, below 1 for times and bytes.

How each figure is measured (every loop is bounded by its count and by
`TIME_LIMIT` seconds; the throughput figures are the best of ``repeats`` runs, each
on a fresh node or loop, actor and baseline runs interleaved):

- ``actors.pingpong``: one process sends an int to an echo process and awaits the
  echo, N times (round trips/s). Baseline: two tasks, two Queues.
- ``actors.oneway``: one process sends N ints to another in bursts of `BURST`
  (yielding to the loop between bursts, so the mailbox stays short); the clock stops
  when the receiver has taken all N and said so (msgs/s). Baseline: one Queue.
- ``actors.ring``: P processes in a ring pass a token P x L times (hops/s).
  Baseline: P tasks, P Queues.
- ``actors.spawn_rate``: spawn N processes that wait in ``receive``, and yield once
  so that every one has started and is waiting (processes/s). Baseline:
  ``create_task`` of a coroutine waiting on its own Queue.
- ``actors.process_memory``: RSS delta (``/proc/self/statm``) / N for N such idle
  processes, each measured in a fresh interpreter so heaps do not interfere.
  Baseline: N tasks waiting on their own Queue.
- ``actors.restart_p50`` / ``actors.restart_p99``: a `GenServer` under a
  ``one_for_one`` `Supervisor` (huge ``max_restarts``) stamps the time and raises;
  its replacement's ``init`` stamps the time and sends it back: the latency is the
  difference (ms). The crash report and the supervisor's error are logged to a
  ``NullHandler`` (the records are built, not printed). Baseline: a plain task that
  raises and is restarted from its done callback; the new task stamps the time on
  its first step.

Processes are spawned with the public API (``spawn``, ``send``, ``receive``) on a
`Node` with the watchdog disabled (a 100 000-process spawn holds the loop on purpose).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import uvloop

from alight.actors import ChildSpec, GenServer, Node, Pid, Supervisor, receive, self_pid, send, spawn
from alight.benchmarks._report import Figure, argument_parser, emit

T = TypeVar("T")

TIME_LIMIT = 60.0
"""Seconds any one measurement may take before it is abandoned with `BenchTimeoutError`."""

BURST = 1000
"""Messages the one-way sender sends between yields to the loop."""


class BenchTimeoutError(Exception):
    """A measurement ran past `TIME_LIMIT`."""


@dataclass(frozen=True, slots=True)
class Counts:
    pingpong: int
    oneway: int
    ring_procs: int
    ring_laps: int
    spawn: int
    memory: int
    restarts: int
    repeats: int


FULL = Counts(
    pingpong=200_000,
    oneway=1_000_000,
    ring_procs=1000,
    ring_laps=1000,
    spawn=100_000,
    memory=100_000,
    restarts=5000,
    repeats=3,
)
QUICK = Counts(
    pingpong=20_000,
    oneway=100_000,
    ring_procs=100,
    ring_laps=100,
    spawn=10_000,
    memory=10_000,
    restarts=300,
    repeats=2,
)


def _deadline() -> float:
    return time.perf_counter() + TIME_LIMIT


def _check(deadline: float) -> None:
    if time.perf_counter() > deadline:
        raise BenchTimeoutError(f"measurement took longer than {TIME_LIMIT} s")


def _node() -> Node:
    return Node("bench@localhost", watchdog_threshold=None)


def _on_node(main: Callable[..., Awaitable[T]], *args: Any) -> T:
    return _node().run(main, *args)


def _on_uvloop(main: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main(*args))


# -- ping-pong ------------------------------------------------------------------------


async def _echo(peer: Pid) -> None:
    while True:
        message = await receive()
        send(peer, message)
        if message < 0:
            return


async def pingpong_actors(n: int) -> float:
    echo = spawn(_echo, self_pid())
    deadline = _deadline()
    start = time.perf_counter()
    for i in range(n):
        send(echo, i)
        await receive()
        if not i & 1023:
            _check(deadline)
    elapsed = time.perf_counter() - start
    send(echo, -1)
    await receive(timeout=TIME_LIMIT)
    return n / elapsed


async def pingpong_queue(n: int) -> float:
    there: asyncio.Queue[int] = asyncio.Queue()
    back: asyncio.Queue[int] = asyncio.Queue()

    async def echo() -> None:
        while True:
            message = await there.get()
            back.put_nowait(message)
            if message < 0:
                return

    task = asyncio.create_task(echo())
    deadline = _deadline()
    start = time.perf_counter()
    for i in range(n):
        there.put_nowait(i)
        await back.get()
        if not i & 1023:
            _check(deadline)
    elapsed = time.perf_counter() - start
    there.put_nowait(-1)
    await asyncio.wait_for(task, TIME_LIMIT)
    return n / elapsed


# -- one-way -------------------------------------------------------------------------


async def _sink(owner: Pid, n: int) -> None:
    for _ in range(n):
        await receive()
    send(owner, "done")


async def oneway_actors(n: int) -> float:
    sink = spawn(_sink, self_pid(), n)
    deadline = _deadline()
    start = time.perf_counter()
    for i in range(n):
        send(sink, i)
        if not i % BURST:
            await asyncio.sleep(0)
            _check(deadline)
    await receive(timeout=TIME_LIMIT)
    return n / (time.perf_counter() - start)


async def oneway_queue(n: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def sink() -> None:
        for _ in range(n):
            await queue.get()

    task = asyncio.create_task(sink())
    deadline = _deadline()
    start = time.perf_counter()
    for i in range(n):
        queue.put_nowait(i)
        if not i % BURST:
            await asyncio.sleep(0)
            _check(deadline)
    await asyncio.wait_for(task, TIME_LIMIT)
    return n / (time.perf_counter() - start)


# -- ring ------------------------------------------------------------------------------


async def _ring_member(owner: Pid, hops: int) -> None:
    after: Pid = await receive()
    while True:
        token = await receive()
        if token < 0:
            return
        if token == hops:
            send(owner, token)
        else:
            send(after, token + 1)


async def ring_actors(procs: int, laps: int) -> float:
    hops = procs * laps
    me = self_pid()
    ring = [spawn(_ring_member, me, hops) for _ in range(procs)]
    for i, pid in enumerate(ring):
        send(pid, ring[(i + 1) % procs])
    await asyncio.sleep(0)
    start = time.perf_counter()
    send(ring[0], 0)
    await receive(timeout=TIME_LIMIT)
    elapsed = time.perf_counter() - start
    for pid in ring:
        send(pid, -1)
    return hops / elapsed


async def ring_queue(procs: int, laps: int) -> float:
    hops = procs * laps
    done: asyncio.Queue[int] = asyncio.Queue()
    queues: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in range(procs)]

    async def member(inbox: asyncio.Queue[int], after: asyncio.Queue[int]) -> None:
        while True:
            token = await inbox.get()
            if token < 0:
                return
            if token == hops:
                done.put_nowait(token)
            else:
                after.put_nowait(token + 1)

    tasks = [asyncio.create_task(member(q, queues[(i + 1) % procs])) for i, q in enumerate(queues)]
    await asyncio.sleep(0)
    start = time.perf_counter()
    queues[0].put_nowait(0)
    await asyncio.wait_for(done.get(), TIME_LIMIT)
    elapsed = time.perf_counter() - start
    for queue in queues:
        queue.put_nowait(-1)
    await asyncio.wait(tasks, timeout=TIME_LIMIT)
    return hops / elapsed


# -- spawn and memory ---------------------------------------------------------------------


async def _idle() -> None:
    await receive()


async def _idle_task(inbox: asyncio.Queue[int]) -> None:
    await inbox.get()


async def spawn_actors(n: int) -> float:
    start = time.perf_counter()
    pids = [spawn(_idle) for _ in range(n)]
    await asyncio.sleep(0)  # every new process takes its first step and waits in receive
    elapsed = time.perf_counter() - start
    for pid in pids:
        send(pid, 0)
    return n / elapsed


async def spawn_queue(n: int) -> float:
    start = time.perf_counter()
    tasks = [asyncio.create_task(_idle_task(asyncio.Queue())) for _ in range(n)]
    await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=TIME_LIMIT)
    return n / elapsed


def rss() -> int:
    """This process's resident set size in bytes, from ``/proc/self/statm``."""
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1])
    return resident * os.sysconf("SC_PAGE_SIZE")


async def memory_actors(n: int) -> float:
    warm = [spawn(_idle) for _ in range(100)]
    await asyncio.sleep(0)
    gc.collect()
    before = rss()
    pids = [spawn(_idle) for _ in range(n)]
    await asyncio.sleep(0)
    gc.collect()
    used = rss() - before
    for pid in warm + pids:
        send(pid, 0)
    return used / n


async def memory_queue(n: int) -> float:
    warm = [asyncio.create_task(_idle_task(asyncio.Queue())) for _ in range(100)]
    await asyncio.sleep(0)
    gc.collect()
    before = rss()
    tasks = [asyncio.create_task(_idle_task(asyncio.Queue())) for _ in range(n)]
    await asyncio.sleep(0)
    gc.collect()
    used = rss() - before
    for task in warm + tasks:
        task.cancel()
    await asyncio.wait(warm + tasks, timeout=TIME_LIMIT)
    return used / n


def _memory_child(kind: str, n: int) -> float:
    if kind == "actors":
        return _on_node(memory_actors, n)
    return _on_uvloop(memory_queue, n)


def memory_in_subprocess(kind: str, n: int) -> float:
    """Run `memory_actors` or `memory_queue` in a fresh interpreter; bytes per process."""
    done = subprocess.run(
        [sys.executable, __file__, "--memory-child", kind, str(n)],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
        check=True,
    )
    return float(done.stdout.strip())


# -- restart latency --------------------------------------------------------------------


class _Crasher(GenServer):
    async def init(self, bench: Pid) -> None:
        self.bench = bench
        send(bench, ("ready", self.pid, time.perf_counter()))

    async def handle_cast(self, request: Any) -> None:
        send(self.bench, ("crash", time.perf_counter()))
        raise RuntimeError("crash on purpose")


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[round(fraction * (len(ordered) - 1))]


async def restart_actors(n: int) -> list[float]:
    from alight.actors import cast

    me = self_pid()
    spec: ChildSpec = _Crasher.child_spec(me, id="crasher")
    await Supervisor.start_link([spec], strategy="one_for_one", max_restarts=10**9, max_seconds=1.0)
    _, child, _ = await receive(timeout=TIME_LIMIT)
    deadline = _deadline()
    warmup = max(10, n // 20)
    latencies: list[float] = []
    for i in range(warmup + n):
        cast(child, "crash")
        _, crashed = await receive(timeout=TIME_LIMIT)
        _, child, ready = await receive(timeout=TIME_LIMIT)
        if i >= warmup:
            latencies.append((ready - crashed) * 1000)
        _check(deadline)
    return latencies


async def restart_queue(n: int) -> list[float]:
    stamps: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
    inboxes: asyncio.Queue[asyncio.Queue[str]] = asyncio.Queue()
    live: set[asyncio.Task[None]] = set()

    async def worker(inbox: asyncio.Queue[str]) -> None:
        stamps.put_nowait(("ready", time.perf_counter()))
        await inbox.get()
        stamps.put_nowait(("crash", time.perf_counter()))
        raise RuntimeError("crash on purpose")

    def start() -> None:
        inbox: asyncio.Queue[str] = asyncio.Queue()
        task = asyncio.create_task(worker(inbox))
        live.add(task)
        task.add_done_callback(restart)
        inboxes.put_nowait(inbox)

    def restart(task: asyncio.Task[None]) -> None:
        live.discard(task)
        if not task.cancelled() and task.exception() is not None:
            start()

    start()
    await stamps.get()
    deadline = _deadline()
    warmup = max(10, n // 20)
    latencies: list[float] = []
    for i in range(warmup + n):
        inbox = inboxes.get_nowait()
        inbox.put_nowait("crash")
        _, crashed = await stamps.get()
        _, ready = await stamps.get()
        if i >= warmup:
            latencies.append((ready - crashed) * 1000)
        _check(deadline)
    for task in list(live):
        task.cancel()
    return latencies


# -- the report -------------------------------------------------------------------------


def _best(repeats: int, actors: Callable[[], float], queue: Callable[[], float]) -> tuple[float, float]:
    """Run both measurements ``repeats`` times, interleaved; the best of each."""
    best_actors = best_queue = 0.0
    for _ in range(repeats):
        best_actors = max(best_actors, actors())
        best_queue = max(best_queue, queue())
    return best_actors, best_queue


def _figure(
    bench: str, value: float, unit: str, baseline: str, baseline_value: float, target: str, met: bool
) -> Figure:
    ratio = value / baseline_value if baseline_value else float("nan")
    return Figure(bench, round(value, 4), unit, baseline, round(baseline_value, 4), round(ratio, 4), target, met)


def measure(counts: Counts) -> list[Figure]:
    """Every figure, in the order of the module docstring."""
    quiet = logging.getLogger("alight")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    reps = counts.repeats
    figures = []

    value, base = _best(
        reps, lambda: _on_node(pingpong_actors, counts.pingpong), lambda: _on_uvloop(pingpong_queue, counts.pingpong)
    )
    figures.append(
        _figure(
            "actors.pingpong",
            value,
            "round trips/s",
            "2 tasks + 2 asyncio.Queue",
            base,
            ">= 0.8x baseline",
            value >= 0.8 * base,
        )
    )

    value, base = _best(
        reps, lambda: _on_node(oneway_actors, counts.oneway), lambda: _on_uvloop(oneway_queue, counts.oneway)
    )
    figures.append(_figure("actors.oneway", value, "msgs/s", "asyncio.Queue", base, ">= 1.0x baseline", value >= base))

    value, base = _best(
        reps,
        lambda: _on_node(ring_actors, counts.ring_procs, counts.ring_laps),
        lambda: _on_uvloop(ring_queue, counts.ring_procs, counts.ring_laps),
    )
    figures.append(
        _figure(
            "actors.ring", value, "hops/s", "ring of tasks + asyncio.Queue", base, ">= 1.0x baseline", value >= base
        )
    )

    value, base = _best(
        reps, lambda: _on_node(spawn_actors, counts.spawn), lambda: _on_uvloop(spawn_queue, counts.spawn)
    )
    figures.append(
        _figure(
            "actors.spawn_rate",
            value,
            "processes/s",
            "create_task + asyncio.Queue",
            base,
            ">= 150000/s",
            value >= 150_000,
        )
    )

    value = memory_in_subprocess("actors", counts.memory)
    base = memory_in_subprocess("queue", counts.memory)
    figures.append(
        _figure("actors.process_memory", value, "bytes", "task + asyncio.Queue", base, "<= 3072 B", value <= 3072)
    )

    actors = _on_node(restart_actors, counts.restarts)
    queue = _on_uvloop(restart_queue, counts.restarts)
    baseline = "task restarted from its done callback"
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        value, base = _percentile(actors, fraction), _percentile(queue, fraction)
        target, met = ("<= 1 ms", value <= 1.0) if name == "p99" else ("-", True)
        figures.append(_figure(f"actors.restart_{name}", value, "ms", baseline, base, target, met))
    return figures


def _table(figures: list[Figure], counts: Counts) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"alight.actors benchmarks (best of {counts.repeats} for rates)")
    for column in ("bench", "value", "unit", "baseline", "baseline value", "ratio", "target", "met"):
        table.add_column(column, justify="right" if column in ("value", "baseline value", "ratio") else "left")
    for f in figures:
        table.add_row(
            f.bench,
            f"{f.value:,.3f}" if f.unit in ("ms",) else f"{f.value:,.0f}",
            f.unit,
            f.baseline,
            f"{f.baseline_value:,.3f}" if f.unit in ("ms",) else f"{f.baseline_value:,.0f}",
            f"{f.ratio:.2f}",
            f.target,
            "yes" if f.met else "[red]no[/red]",
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--memory-child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        kind, n = args.memory_child
        print(_memory_child(kind, int(n)))
        return 0
    counts = QUICK if args.quick else FULL
    figures = measure(counts)
    emit(figures, args.json, lambda: _table(figures, counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
