"""A rolling restart under load: each node of a 3-node cluster drains and comes back.

    .venv/bin/python benchmarks/drain.py --json          # 10,000 clients
    .venv/bin/python benchmarks/drain.py --quick         # 1,000 (what the smoke test runs)

Three ``alight node`` processes of ``benchmarks/scale_app.py`` share one port
(``--reuse-port``); a load generator (``_scale_loadgen.py``) holds N clients, each in a
room of 100 with presence (5,000 a process), that reconnect as phoenix.js does (backoff with jitter), and
sends a numbered broadcast to every room every `TICK` s through whichever node answers.
Then, node after node: SIGTERM (the node drains, `alight.channels.drainer`: it stops
accepting, its presences leave the others at once, its connections close in batches),
its clients rejoin the two others, the node is started again, and once every node lists
exactly the N presences the next one goes. Figures:

- ``drain.rolling_restart_settle[node]``: seconds from the SIGTERM until every client is
  joined again and the presence lists of the two other nodes are exact (target <= 5 s;
  the detail has when the drained node had exited, was back, and had converged too);
- ``drain.peak_join_rate``: the most joins in one second on the survivors;
- ``drain.broadcasts_lost_outside_drain``: numbered broadcasts a client did not get
  although it was joined when they were sent, on a node that was not draining (target
  0; those sent to a client's node once it began to drain are the drain window's, and
  a request whose node went before it replied is not counted either way).

``--drain BATCH_SIZE,INTERVAL`` sets the nodes' drainer (default Phoenix's: batches of
10,000, 2 s apart). Bounded (``--time-limit``); every process is stopped on the way out.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

from alight.benchmarks._procs import BenchError
from alight.benchmarks._report import Figure, argument_parser, emit, exit_on_sigterm
from alight.benchmarks.scale import (
    ROOM_SIZE,
    Cluster,
    Crowd,
    Plan,
    Run,
    _targeted,
    _wait_converged,
    capacity,
    raise_fd_limit,
)

NODES = 3
TICK = 0.5
"""Seconds between two numbered broadcasts to every room."""
SETTLE_TARGET = 5.0
PER_LOADGEN = 5_000
"""Clients per load generator: with 10,000 in one, its own loop bounded the rejoin rate
(step 3 took 9 s, against 6 s with two)."""
AFTER = 2.0
"""Seconds after the last restart before the losses are counted (the last broadcasts land)."""


def rolling_restart(run: Run, n: int, per_process: int) -> list[Figure]:
    n -= n % ROOM_SIZE
    rooms = n // ROOM_SIZE
    steps: list[dict[str, Any]] = []
    windows: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        cluster = Cluster(run, NODES, stack)
        crowd = Crowd(run, cluster.port, n, per_process, stack)
        names = cluster.names()
        ramp = crowd.open(run, rooms=True)
        _wait_converged(run, crowd, n, names, 60)
        crowd.gens[0].ask({"cmd": "ticker", "rooms": rooms, "interval": TICK})
        for victim in range(1, NODES + 1):
            name = f"scale{victim}@127.0.0.1"
            survivors = [other for other in names if other != name]
            armed = crowd.ask_all({"cmd": "arm"}, 10)
            moved = sum(answer["on_node"].get(name, 0) for answer in armed)
            began = time.monotonic()
            windows[name] = began
            leaving = cluster.terminate(victim)
            timeout = run.left(60)
            rejoined = crowd.ask_all({"cmd": "joined", "timeout": timeout, "gone": name}, timeout + 30)
            joined_at = max(r["at"] for r in rejoined)
            _wait_converged(run, crowd, n, survivors, 60)
            exact_at = time.monotonic()
            code = leaving.proc.wait(run.left(60))
            exited_at = time.monotonic()
            cluster.restart(victim)
            back_at = time.monotonic()
            _wait_converged(run, crowd, n, names, 60)
            converged_at = time.monotonic()
            steps.append(
                {
                    "node": name,
                    "clients_moved": moved,
                    "settle_s": round(max(joined_at, exact_at) - began, 3),
                    "rejoined_s": round(joined_at - began, 3),
                    "survivors_exact_s": round(exact_at - began, 3),
                    "exited_s": round(exited_at - began, 3),
                    "exit_status": code,
                    "back_s": round(back_at - began, 3),
                    "all_exact_s": round(converged_at - began, 3),
                    "peak_joins_per_s": sum(r["peak_joins_per_s"] for r in rejoined),
                    "reconnects": sum(r["reconnects"] for r in rejoined),
                }
            )
        time.sleep(AFTER)
        ticks = crowd.gens[0].ask({"cmd": "ticker_stop"}, run.left(30))
        time.sleep(AFTER)  # what was sent last lands
        loss = crowd.ask_all({"cmd": "loss", **ticks, "windows": windows}, run.left(60))
    setup = {"n": n, "nodes": NODES, "rooms": rooms, "drainer": os.environ.get("ALIGHT_BENCH_DRAIN", "default")}
    figures = [
        _targeted(
            f"drain.rolling_restart_settle[{step['node']}]",
            step["settle_s"],
            "s",
            (SETTLE_TARGET, f"<= {SETTLE_TARGET:g} s", step["settle_s"] <= SETTLE_TARGET),
            {**setup, **step},
        )
        for step in steps
    ]
    figures.append(
        Figure(
            "drain.peak_join_rate",
            max(step["peak_joins_per_s"] for step in steps),
            "joins/s",
            "-",
            0,
            0,
            detail={**setup, "ramp": {k: v for k, v in ramp.items() if k != "processes"}},
        )
    )
    expected = sum(part["expected"] for part in loss)
    missing = sum(part["missing"] for part in loss)
    figures.append(
        Figure(
            "drain.broadcasts_lost_outside_drain",
            missing,
            "deliveries",
            "deliveries expected",
            expected,
            round(missing / expected, 6) if expected else 0.0,
            "0",
            missing == 0,
            {
                **setup,
                "expected": expected,
                "broadcasts": len(ticks["sent"]) * rooms,
                "uncertain_requests": len(ticks["uncertain"]),
                "duplicates": sum(part["duplicates"] for part in loss),
                "examples": [e for part in loss for e in part["examples"]][:5],
            },
        )
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--clients", type=int, help="clients (default 10,000; --quick 1,000)")
    parser.add_argument("--drain", help="the nodes' drainer: BATCH_SIZE,INTERVAL (default Phoenix's)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds for the whole run")
    parser.add_argument(
        "--per-process",
        type=int,
        default=PER_LOADGEN,
        help=f"clients a load generator holds at most (default {PER_LOADGEN:,}: one alone is what limits the rejoins)",
    )
    args = parser.parse_args(argv)
    n = args.clients or (1_000 if args.quick else 10_000)
    if args.drain:
        os.environ["ALIGHT_BENCH_DRAIN"] = args.drain  # read by scale_app in each node
    exit_on_sigterm()
    limit = raise_fd_limit(n + 2_000)
    if capacity(limit) < n:
        print(f"drain: {n} clients need RLIMIT_NOFILE >= {n + 2_000} (it is {limit})", file=sys.stderr)
        return 1
    run = Run(Plan(sizes=(), storm=0, broadcasts=0, time_limit=args.time_limit))
    run.deadline = time.monotonic() + args.time_limit
    print(f"drain: rolling restart of {NODES} nodes under {n} clients ...", file=sys.stderr, flush=True)
    try:
        figures = rolling_restart(run, n, min(capacity(limit), args.per_process))
    except BenchError as error:
        print(f"drain: {error}", file=sys.stderr)
        return 1
    emit(figures, args.json, lambda: print("\n".join(f"{f.bench}: {f.value} {f.unit}" for f in figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
