"""How alight's cost grows to 100,000 joined connections: nodes sharing one port.

Run ``python benchmarks/scale.py`` for a table, ``--json`` for one JSON object per figure
and line (the format of the other benchmarks), ``--quick`` for small counts (a smoke test),
``--sizes 10000,50000,100000`` and ``--storm N`` to choose the counts, ``--markdown`` to
print the curve as the README's table.

For every size N: fresh ``alight node`` processes of ``benchmarks/scale_app.py`` share one
HTTP port (``--reuse-port``: the kernel spreads the connections over them), pinned to CPU 0
and 1 in turn; the load generators (``_scale_loadgen.py``, not pinned: they share both
cores with the nodes) hold N Phoenix V2 WebSocket clients, each joined to ``scale:all``,
from 127.0.0.x source addresses. Two nodes and one load generator where ``RLIMIT_NOFILE``
allows (it is raised to what N needs when this process may); where it does not, as many
of each as keep every process under its limit (``--per-process`` lowers that bound), and
stderr says what limit two processes would need. Figures per N:

- ``scale.connections``: clients connected and joined (target 100,000);
- ``scale.memory_per_connection``: RSS of the nodes after the ramp (and `SETTLE` seconds)
  over their RSS before it, / N (target <= 10,240 B at 100,000);
- ``scale.connect_rate``: connections + joins per second over the ramp;
- ``scale.broadcast_all_p50`` / ``_p99``: ms from a broadcast (asked for by a control
  client on some node, reaching the others through cluster PubSub) to each delivery, over
  all N deliveries of each of ``--broadcasts`` broadcasts, one every N / 40,000 s (at least
  0.5 s) (target p99 <= 1,500 ms at 100,000);
- ``scale.cpu_per_1k_deliveries``: CPU seconds of the nodes over those broadcasts per
  1,000 deliveries.

Then the reconnect storm (``--storm N``, default 50,000: see the README for 100,000): N clients on fresh
nodes (one more than the curve's, so that the survivors can hold every client), each in a
room of 100 with presence (``scale:room:K``). Once every node lists every presence, the
last node (1/k of the clients; half of them with two nodes) is SIGKILLed; its clients
reconnect to the survivors as phoenix.js does (backoff with jitter) and rejoin; then it is
started again. ``scale.reconnect_storm`` is the seconds from the kill until every node
lists exactly N presences, N distinct users and every room full (target <= 10 s); the
detail has the seconds until every client was joined again (``rejoined_s``) and until the
node was back.

Bounded: every step has a timeout (``--time-limit`` for the whole run); every process it
started is stopped on the way out, errors included.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from alight.benchmarks._procs import (
    CPUS,
    ROOT,
    BenchError,
    Child,
    can_pin,
    cpu_seconds,
    free_port,
    kill_group,
    percentile,
    pinned,
    rss_bytes,
    started,
)
from alight.benchmarks._report import Figure, argument_parser, emit, exit_on_sigterm

APP = "benchmarks.scale_app:app"
LOADGEN = ROOT / "benchmarks" / "_scale_loadgen.py"
ROOM_SIZE = 100
SETTLE = 2.0
"""Seconds after the ramp before RSS is read (the nodes' garbage and buffers settle)."""
POLL = 0.2
"""Seconds between two presence summaries while waiting for convergence."""
FD_RESERVE = 1_500
"""Descriptors a process keeps for other things than connections."""
IMBALANCE = 1.1
"""How much more than its share a node may get of connections spread by the kernel."""
PHOENIX_DENSITY = "Phoenix: 2,000,000 on 40 cores (~50,000/core, 40-60 KB each)"


@dataclass(frozen=True, slots=True)
class Plan:
    sizes: tuple[int, ...]
    storm: int
    broadcasts: int
    time_limit: float


FULL = Plan(sizes=(10_000, 50_000, 100_000), storm=50_000, broadcasts=5, time_limit=900.0)
QUICK = Plan(sizes=(1_000, 3_000), storm=2_000, broadcasts=3, time_limit=180.0)


@dataclass
class Run:
    """The state of one run: the secret, its deadline, what it measured."""

    plan: Plan
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    deadline: float = 0.0
    figures: list[Figure] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)

    def left(self, cap: float) -> float:
        """Seconds a step may take: ``cap``, or what is left of the run if less."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 1:
            raise BenchError("the run's time limit is reached")
        return min(cap, remaining)


# -- processes --------------------------------------------------------------------------------


def capacity(limit: int) -> int:
    """Connections one process may hold under ``RLIMIT_NOFILE`` ``limit``."""
    return limit - FD_RESERVE


def node_count(n: int, per_process: int, *, storm: bool = False) -> int:
    """Nodes for ``n`` connections: 2, or more where one process may not hold its share
    (with `IMBALANCE` for the kernel's hashing; after a kill the survivors hold all)."""
    return max(2, math.ceil(n * IMBALANCE / per_process) + (1 if storm else 0))


def _node_command(index: int, port: int, seeds: list[str]) -> list[str]:
    name = f"scale{index}@127.0.0.1"
    command = [sys.executable, "-m", "alight.cli", "node", "--name", name, "--app", APP, "--port", str(port)]
    command += ["--reuse-port", *(f"--seeds={seed}" for seed in seeds)]
    return pinned(command, CPUS[(index - 1) % len(CPUS)])


class Cluster:
    """``count`` fresh ``alight node`` processes sharing one port, nodes alternating
    between the two CPUs; node 1 is every other's seed. Stops them all on exit."""

    def __init__(self, run: Run, count: int, stack: contextlib.ExitStack) -> None:
        self.run, self.stack = run, stack
        self.port = free_port()
        self.nodes: dict[int, Child] = {1: self._start(1, [])}
        self.seed = self.nodes[1].ready.rsplit("cluster_address=", 1)[1].strip()
        rest = {i: self._start(i, [self.seed], wait=False) for i in range(2, count + 1)}
        for child in rest.values():
            child.ready = child.expect("alight-node-ready")
        self.nodes.update(rest)

    def _start(self, index: int, seeds: list[str], *, wait: bool = True) -> Child:
        command = _node_command(index, self.port, seeds)
        ready = "alight-node-ready" if wait else ""
        return self.stack.enter_context(started(command, f"scale{index}@127.0.0.1", ready, self.run.secret))

    def names(self) -> list[str]:
        return [child.label for child in self.nodes.values()]

    def pids(self) -> list[int]:
        return [child.proc.pid for child in self.nodes.values()]

    def kill(self, index: int) -> None:
        kill_group(self.nodes.pop(index).proc, signal.SIGKILL)

    def terminate(self, index: int) -> Child:
        """SIGTERM node ``index`` (an orderly stop: it drains); it is no longer a member
        here, its process is the caller's to wait for."""
        child = self.nodes.pop(index)
        child.proc.send_signal(signal.SIGTERM)
        return child

    def restart(self, index: int) -> None:
        """Start node ``index`` again, joining through a node that is up (with the address
        it has now: a restarted node has a new cluster port)."""
        live = next(child for i, child in sorted(self.nodes.items()) if i != index)
        self.nodes[index] = self._start(index, [live.ready.rsplit("cluster_address=", 1)[1].strip()])


class Crowd:
    """The load generators: ``n`` clients split over as many processes as the descriptor
    limit needs, in shares of whole rooms; `ask_all` sends one command to each."""

    def __init__(self, run: Run, port: int, n: int, per_process: int, stack: contextlib.ExitStack) -> None:
        per_process -= per_process % ROOM_SIZE
        self.shares = [min(per_process, n - first) for first in range(0, n, per_process)]
        url = f"ws://127.0.0.1:{port}/socket/websocket"
        self.gens = [
            stack.enter_context(
                started(
                    [sys.executable, str(LOADGEN), "--url", url, "--first", str(i * per_process)],
                    f"load generator {i}",
                    "",
                    run.secret,
                    commands=True,
                )
            )
            for i in range(len(self.shares))
        ]

    def ask_all(self, command: dict[str, Any], timeout: float, **per_gen: list[Any]) -> list[dict[str, Any]]:
        for i, gen in enumerate(self.gens):
            gen.tell({**command, **{key: values[i] for key, values in per_gen.items()}})
        return [gen.answer(str(command["cmd"]), timeout) for gen in self.gens]

    def open(self, run: Run, rooms: bool) -> dict[str, Any]:
        n = sum(self.shares)
        timeout = run.left(60 + n / 300)
        started_at = time.monotonic()
        answers = self.ask_all({"cmd": "open", "rooms": rooms, "timeout": timeout}, timeout + 30, n=self.shares)
        seconds = time.monotonic() - started_at
        joined = sum(a["joined"] for a in answers)
        return {"joined": joined, "seconds": round(seconds, 3), "per_s": round(joined / seconds), "processes": answers}


# -- the curve --------------------------------------------------------------------------------


def measure_size(run: Run, n: int, per_process: int) -> None:
    with contextlib.ExitStack() as stack:
        cluster = Cluster(run, node_count(n, per_process), stack)
        crowd = Crowd(run, cluster.port, n, per_process, stack)
        pids = cluster.pids()
        time.sleep(SETTLE)  # the nodes' start-up garbage settles before the baseline
        rss_before = sum(rss_bytes(pid) for pid in pids)
        ramp = crowd.open(run, rooms=False)
        time.sleep(SETTLE)
        per_node = [rss_bytes(pid) for pid in pids]
        rss_after = sum(per_node)
        count = run.plan.broadcasts
        interval = max(0.5, n / 40_000)
        crowd.ask_all({"cmd": "arm"}, 10)
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        crowd.gens[0].ask({"cmd": "broadcast", "count": count, "interval": interval}, run.left(30 + count * interval))
        timeout = run.left(60 + n / 1000)
        collected = crowd.ask_all({"cmd": "collect", "count": count, "timeout": timeout}, timeout + 30)
        node_cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    ms = [x for answer in collected for x in answer["ms"]]
    deliveries = len(ms)
    p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
    per_connection = (rss_after - rss_before) / n
    cpu_per_1k = node_cpu / (deliveries / 1000)
    run.curve.append(
        {
            "n": n,
            "nodes": len(pids),
            "joined": ramp["joined"],
            "memory_per_connection": round(per_connection, 1),
            "connect_rate": ramp["per_s"],
            "broadcast_all_p50": p50,
            "broadcast_all_p99": p99,
            "cpu_per_1k_deliveries": round(cpu_per_1k, 5),
        }
    )
    tag = f"[{n}]"
    at_target = n >= 100_000
    setup = {"n": n, "nodes": len(pids), "load_generators": len(crowd.gens)}
    memory = {**setup, "rss_before": rss_before, "rss_after": rss_after, "rss_after_per_node": per_node}
    sent = {**setup, "broadcasts": count, "interval_s": interval, "deliveries": deliveries, "max_ms": max(ms)}
    loadgen_cpu = round(sum(a["cpu_s"] for a in collected), 3)
    run.figures += [
        _targeted(
            f"scale.connections{tag}",
            ramp["joined"],
            "connections",
            (100_000, ">= 100,000 (moonshot 200,000)", ramp["joined"] >= 100_000 if at_target else None),
            {**setup, "phoenix": PHOENIX_DENSITY},
        ),
        _targeted(
            f"scale.memory_per_connection{tag}",
            round(per_connection, 1),
            "B",
            (10_240, "<= 10,240 B at 100,000", per_connection <= 10_240 if at_target else None),
            {**memory, "phoenix": "~9.5 KB a socket alone, ~30 KB joined (measured on this machine)"},
        ),
        Figure(f"scale.connect_rate{tag}", ramp["per_s"], "connections+joins/s", "-", 0, 0, detail={**setup, **ramp}),
        Figure(f"scale.broadcast_all_p50{tag}", p50, "ms", "-", 0, 0, detail=sent),
        _targeted(
            f"scale.broadcast_all_p99{tag}",
            p99,
            "ms",
            (1_500, "<= 1,500 ms at 100,000", p99 <= 1_500 if at_target else None),
            sent,
        ),
        Figure(
            f"scale.cpu_per_1k_deliveries{tag}",
            round(cpu_per_1k, 5),
            "CPU s",
            "-",
            0,
            0,
            detail={**sent, "node_cpu_s": round(node_cpu, 3), "loadgen_cpu_s": loadgen_cpu},
        ),
    ]


def _targeted(
    bench: str, value: float, unit: str, target: tuple[float, str, bool | None], detail: dict[str, Any]
) -> Figure:
    """A figure whose baseline is its target: ``(target value, as text, met or None)``."""
    goal, text, met = target
    return Figure(bench, value, unit, "target", goal, round(value / goal, 4), text, met, detail)


# -- the reconnect storm --------------------------------------------------------------------


def _converged(summaries: dict[str, Any], n: int) -> bool:
    rooms = n // ROOM_SIZE
    return all(s["metas"] == n and s["users"] == n and s["full"] == rooms for s in summaries.values())


def _wait_converged(run: Run, crowd: Crowd, n: int, names: list[str], cap: float) -> dict[str, Any]:
    """Poll every node's presence summary until each lists exactly the N clients."""
    deadline = time.monotonic() + run.left(cap)
    rooms = n // ROOM_SIZE
    while True:
        summaries = crowd.gens[0].ask({"cmd": "summary", "rooms": rooms, "nodes": names})
        if _converged(summaries, n):
            return summaries
        if time.monotonic() > deadline:
            raise BenchError(f"presence not converged after {cap} s: {summaries}")
        time.sleep(POLL)


def measure_storm(run: Run, n: int, per_process: int) -> None:
    n -= n % ROOM_SIZE
    with contextlib.ExitStack() as stack:
        cluster = Cluster(run, node_count(n, per_process, storm=True), stack)
        crowd = Crowd(run, cluster.port, n, per_process, stack)
        names = cluster.names()
        ramp = crowd.open(run, rooms=True)
        _wait_converged(run, crowd, n, names, 60)
        victim = len(names)
        killed_at = time.monotonic()
        cluster.kill(victim)
        timeout = run.left(120)
        rejoined = crowd.ask_all({"cmd": "joined", "timeout": timeout}, timeout + 30)
        restart = time.monotonic()
        cluster.restart(victim)
        back = time.monotonic()
        summaries = _wait_converged(run, crowd, n, names, 120)
        converged_at = time.monotonic()
    seconds = converged_at - killed_at
    run.figures.append(
        _targeted(
            f"scale.reconnect_storm[{n}]",
            round(seconds, 3),
            "s",
            (10.0, "<= 10 s", seconds <= 10.0),
            {
                "n": n,
                "nodes": len(names),
                "killed": f"scale{victim}@127.0.0.1",
                "rooms": n // ROOM_SIZE,
                "ramp_with_presence": {k: v for k, v in ramp.items() if k != "processes"},
                "rejoined_s": round(max(r["at"] for r in rejoined) - killed_at, 3),
                "reconnect_attempts": sum(r["reconnects"] for r in rejoined),
                "node_restarted_s": round(restart - killed_at, 3),
                "node_back_s": round(back - killed_at, 3),
                "summaries": summaries,
            },
        )
    )


# -- the run ------------------------------------------------------------------------------------


def raise_fd_limit(need: int) -> int:
    """Raise RLIMIT_NOFILE (inherited by the children) to ``need`` if allowed; the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    for limit in ((need, max(hard, need)), (min(need, hard), hard)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            break
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def markdown(curve: list[dict[str, Any]]) -> str:
    """The curve as a Markdown table (the README's)."""
    lines = [
        "| joined connections | nodes | bytes / connection | connects + joins / s "
        "| broadcast to all p50 / p99 (ms) | node CPU s / 1k deliveries |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for p in curve:
        lines.append(
            f"| {p['n']:,} | {p['nodes']} | {p['memory_per_connection']:,.0f} | {p['connect_rate']:,} "
            f"| {p['broadcast_all_p50']:,.0f} / {p['broadcast_all_p99']:,.0f} | {p['cpu_per_1k_deliveries']:.4f} |"
        )
    return "\n".join(lines)


def _table(figures: list[Figure]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="alight at scale: 2 nodes sharing one port", caption=cores())
    for column in ("bench", "value", "unit", "target", "met"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for f in figures:
        met = "-" if f.met is None else ("yes" if f.met else "[red]no[/red]")
        table.add_row(f.bench.removeprefix("scale."), f"{f.value:,.3f}".rstrip("0").rstrip("."), f.unit, f.target, met)
    Console(width=max(Console().width, 100)).print(table)


def cores() -> str:
    if can_pin():
        return f"node 1 pinned to CPU {CPUS[0]}, node 2 to CPU {CPUS[1]}; the load generator shares both"
    return f"not pinned ({os.cpu_count()} CPUs)"


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--sizes", help="comma-separated N (default 10000,50000,100000)")
    parser.add_argument("--storm", type=int, help="clients in the reconnect storm (0: none)")
    parser.add_argument("--broadcasts", type=int, help="broadcasts to all per size")
    parser.add_argument("--time-limit", type=float, help="seconds for the whole run")
    parser.add_argument("--per-process", type=int, help="connections a node or load generator holds at most")
    parser.add_argument("--markdown", action="store_true", help="also print the curve as a Markdown table (stderr)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    plan = Plan(
        sizes=tuple(int(s) for s in args.sizes.split(",")) if args.sizes else base.sizes,
        storm=base.storm if args.storm is None else args.storm,
        broadcasts=args.broadcasts or base.broadcasts,
        time_limit=args.time_limit or base.time_limit,
    )
    exit_on_sigterm()
    biggest = max((*plan.sizes, plan.storm))
    want = math.ceil(biggest * IMBALANCE) + FD_RESERVE
    limit = raise_fd_limit(want)
    run = Run(plan, deadline=time.monotonic() + plan.time_limit)
    per_process = min(capacity(limit), args.per_process or capacity(limit))
    print(f"scale: {cores()}; RLIMIT_NOFILE {limit}; up to {per_process} connections a process", file=sys.stderr)
    if limit < want:
        print(
            f"scale: one process may hold {capacity(limit)} connections (RLIMIT_NOFILE {limit}, and it cannot be "
            f"raised here: raising the hard limit needs CAP_SYS_RESOURCE, e.g. `ulimit -Hn {want}` as a root with "
            f"it, or LimitNOFILE={want} in a systemd unit); the connections go to more nodes sharing the port "
            "(and more load generators) instead of two",
            file=sys.stderr,
        )
    try:
        for n in plan.sizes:
            print(f"scale: N={n} on {node_count(n, per_process)} nodes ...", file=sys.stderr, flush=True)
            measure_size(run, n, per_process)
        if plan.storm:
            nodes = node_count(plan.storm, per_process, storm=True)
            print(f"scale: reconnect storm, N={plan.storm} on {nodes} nodes ...", file=sys.stderr, flush=True)
            measure_storm(run, plan.storm, per_process)
    except BenchError as error:
        print(f"scale: {error}", file=sys.stderr)
        emit(run.figures, args.json, lambda: _table(run.figures))
        return 1
    if args.markdown and run.curve:
        print(markdown(run.curve), file=sys.stderr)
    emit(run.figures, args.json, lambda: _table(run.figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
