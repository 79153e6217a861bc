"""Benchmark of alight's Python client against a raw picows client.

Run ``python benchmarks/clients.py`` for a table, ``--json`` for one JSON object per figure
and line (``bench``, ``value``, ``unit``, ``baseline``, ``baseline_value``, ``ratio``, plus
``target``, ``met``, ``clients`` and ``detail``, each receiver's own report), ``--quick`` for
small counts (a smoke test of a few seconds).

- ``clients.python_receive`` (messages/s): one client process joined to a ``bench:*`` topic
  of alight's benchmark app (``benchmarks/channel_app.py``, served by ``alight run``) asks
  for B broadcasts of ~100-byte frames on its own socket; B / (time from the request sent to
  the last broadcast received); best of R rounds. The receiver is `alight.client` (a
  ``Channel.on`` callback counting the messages) and, as the baseline in the same run against
  the same server process, a raw picows ``WSListener`` that decodes every frame with orjson.
  Target: at least 0.5 x the picows client. Both receivers run on uvloop.

The server is pinned to CPU 0 and each receiver (its own process, one after the other) to CPU
1; ``detail`` carries ``client_cpu`` and ``server_cpu`` (CPU seconds / wall seconds over the
measured rounds): a ``client_cpu`` near 1 means the receiver was the bound. Every wait has
a time limit, and the server and receivers are killed (their whole process group) on the way
out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson

from alight.benchmarks._loadgen import Client, Window, padded_payload
from alight.benchmarks._procs import can_pin, kill_group, pinned
from alight.benchmarks._report import argument_parser, emit, exit_on_sigterm
from alight.benchmarks.channels import (
    HERE,
    LOADGEN_CPU,
    ROOT,
    BenchError,
    Figure,
    Server,
    alight_command,
    alight_missing,
    cores,
    server,
)

TOPIC = "bench:clients"
EVENT = "msg"
FRAME_BYTES = 100
TARGET = 0.5


@dataclass(frozen=True, slots=True)
class Counts:
    broadcasts: int
    rounds: int
    time_limit: float


FULL = Counts(20_000, 3, 60.0)
QUICK = Counts(2_000, 1, 15.0)


def _control(count: int) -> dict[str, Any]:
    return {"topic": TOPIC, "event": EVENT, "payload": padded_payload(FRAME_BYTES), "count": count}


# -- receivers (run as ``clients.py --receiver KIND``, in their own process) ----------------


async def _python_rounds(url: str, counts: Counts, deadline: float) -> list[float]:
    from alight.client import Message, Socket

    socket = Socket(url, timeout=counts.time_limit)
    await socket.connect()
    try:
        channel = socket.channel(TOPIC)
        await asyncio.wait_for(channel.join(), max(0.001, deadline - time.monotonic()))
        state = {"seen": 0, "last": 0.0}
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def count(message: Message) -> None:
            state["seen"] += 1
            if state["seen"] == counts.broadcasts:
                state["last"] = time.perf_counter()
                if not done.done():
                    done.set_result(None)

        channel.on(EVENT, count)
        rates = []
        for _ in range(counts.rounds):
            state["seen"] = 0
            done = asyncio.get_running_loop().create_future()
            started = time.perf_counter()
            reply = asyncio.ensure_future(channel.push("bench_broadcast", _control(counts.broadcasts)))
            await asyncio.wait_for(done, max(0.001, deadline - time.monotonic()))
            rates.append(counts.broadcasts / (state["last"] - started))
            await asyncio.wait_for(reply, max(0.001, deadline - time.monotonic()))
        return rates
    finally:
        await socket.disconnect()


async def _picows_rounds(url: str, counts: Counts, deadline: float) -> list[float]:
    from picows import WSFrame, ws_connect

    from alight.benchmarks._loadgen import _reply_sink

    _, listener = await ws_connect(Client, url, enable_auto_pong=True)
    assert isinstance(listener, Client)
    try:
        await asyncio.wait_for(listener.push(TOPIC, "phx_join", {}), max(0.001, deadline - time.monotonic()))
        state = {"seen": 0, "last": 0.0}
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def sink(client: Client, frame: WSFrame) -> None:
            message = orjson.loads(frame.get_payload_as_bytes())
            if message[3] != EVENT:
                _reply_sink(client, frame)
                return
            state["seen"] += 1
            if state["seen"] == counts.broadcasts:
                state["last"] = time.perf_counter()
                if not done.done():
                    done.set_result(None)

        listener.sink = sink
        rates = []
        for _ in range(counts.rounds):
            state["seen"] = 0
            done = asyncio.get_running_loop().create_future()
            started = time.perf_counter()
            reply = listener.push(TOPIC, "bench_broadcast", _control(counts.broadcasts))
            await asyncio.wait_for(done, max(0.001, deadline - time.monotonic()))
            rates.append(counts.broadcasts / (state["last"] - started))
            await asyncio.wait_for(reply, max(0.001, deadline - time.monotonic()))
        return rates
    finally:
        listener.close()


async def _receive(kind: str, url: str, server_pid: int, counts: Counts) -> dict[str, Any]:
    deadline = time.monotonic() + counts.time_limit
    window = Window(server_pid)
    rates = await (_python_rounds if kind == "python" else _picows_rounds)(url, counts, deadline)
    shares = window.shares()
    return {
        "rate": max(rates),
        "rates": [round(rate, 1) for rate in rates],
        "broadcasts": counts.broadcasts,
        "client_cpu": shares["loadgen_cpu"],
        "server_cpu": shares["server_cpu"],
    }


def receiver_main(kind: str, url: str, server_pid: int, counts: Counts) -> int:
    import uvloop
    from picows import WSError

    from alight.benchmarks._loadgen import LoadgenError
    from alight.client import ClientError

    try:
        report = uvloop.run(_receive(kind, url, server_pid, counts))
    except (ClientError, LoadgenError, OSError, WSError, TimeoutError) as error:
        report = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(report), flush=True)
    return 1 if "error" in report else 0


# -- the run ----------------------------------------------------------------------------


def receive(kind: str, target: Server, counts: Counts) -> dict[str, Any]:
    """Run one receiver process of ``kind`` against ``target``; its JSON report."""
    command = [
        sys.executable,
        str(HERE / "clients.py"),
        "--receiver",
        kind,
        "--url",
        target.url,
        "--server-pid",
        str(target.pid),
        "--broadcasts",
        str(counts.broadcasts),
        "--rounds",
        str(counts.rounds),
        "--time-limit",
        str(counts.time_limit),
    ]
    proc = subprocess.Popen(
        pinned(command, LOADGEN_CPU),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=counts.time_limit + 15)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the {kind} receiver did not stop in time") from None
    finally:
        kill_group(proc)
    try:
        report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchError(f"the {kind} receiver printed no report: {err[-1500:]}") from None
    if proc.returncode != 0 or "error" in report:
        raise BenchError(f"the {kind} receiver: {report.get('error')} {err[-800:]}")
    return report


def measure(counts: Counts) -> list[Figure]:
    with server("alight", alight_command) as target:
        base = receive("picows", target, counts)
        mine = receive("python", target, counts)
    ratio = round(mine["rate"] / base["rate"], 4)
    return [
        Figure(
            "clients.python_receive",
            round(mine["rate"], 1),
            "messages/s",
            "picows client",
            round(base["rate"], 1),
            ratio,
            f">= {TARGET}x picows client",
            ratio >= TARGET,
            1,
            {"baseline": base, "value": mine, "pinned": can_pin()},
        )
    ]


def _table(figures: list[Figure]) -> None:
    for figure in figures:
        verdict = "met" if figure.met else "NOT met"
        print(
            f"{figure.bench}: {figure.value:,.0f} {figure.unit} vs {figure.baseline} "
            f"{figure.baseline_value:,.0f} = {figure.ratio:.2f}x ({figure.target}: {verdict})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--receiver", choices=("python", "picows"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--broadcasts", type=int, default=FULL.broadcasts, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=FULL.rounds, help=argparse.SUPPRESS)
    parser.add_argument("--time-limit", type=float, default=FULL.time_limit, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receiver:
        counts = Counts(args.broadcasts, args.rounds, args.time_limit)
        return receiver_main(args.receiver, args.url, args.server_pid, counts)
    missing = alight_missing()
    if missing:
        print(f"clients: {missing}", file=sys.stderr)
        return 1
    exit_on_sigterm()
    print(f"clients: {cores()}", file=sys.stderr)
    try:
        figures = measure(QUICK if args.quick else FULL)
    except BenchError as error:
        print(f"clients: {error}", file=sys.stderr)
        return 1
    emit(figures, args.json, lambda: _table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
