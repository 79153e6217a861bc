"""Broadcasts between two nodes that share only a Redis server, against raw redis-py.

Run ``python benchmarks/redis_pubsub.py`` for a table, ``--json`` for one JSON object per
figure and line (the format of every benchmark here), ``--quick`` for small counts.

Starts its own ``redis-server`` (Debian's, or ``valkey-server``) on 127.0.0.1 and a free
port, no persistence, pinned to CPU 1 with the receiving process; the sending process is
pinned to CPU 0. Every process is stopped on the way out, errors included.

- ``redis.broadcast`` (messages/s): node ``a`` (`alight.cluster.redis.RedisPubSub` on an
  endpoint) broadcasts N channel `Broadcast`\\ s with a 100-byte body on one topic; the
  clock runs from the first broadcast until the first of 4 subscribers on node ``b`` has
  counted all N (every one crossed Redis once: ``detail.lost`` is 0 or the run fails).
  Baseline, measured in the same run: redis-py's asyncio client alone (hiredis parser),
  one process PUBLISHing N payloads of alight's frame size (envelope, msgpack, HMAC seal)
  pipelined 512 at a time as the adapter does, one process subscribed and counting.
  Best of R runs each. No target is named by the issue; the ratio says what the data-only
  encoding, the seal, the sequence numbers and the dispatch to subscribers cost.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alight.benchmarks._procs import CPUS, BenchError, Child, free_port, kill_group, pinned, started
from alight.benchmarks._report import Figure, argument_parser, emit, exit_on_sigterm

ROOT = Path(__file__).resolve().parents[1]
NODE = ROOT / "benchmarks" / "_redis_node.py"
CPU_A, CPU_B = CPUS


@dataclass(frozen=True, slots=True)
class Counts:
    messages: int
    repeats: int


FULL = Counts(messages=200_000, repeats=3)
QUICK = Counts(messages=5_000, repeats=1)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A fresh redis-server on a free port; its URL. Stopped on the way out."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        raise BenchError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="alight-bench-redis-")
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    # The subscriber lags while the sender bursts: its output buffer at Redis must hold
    # the backlog (the default pubsub limit, 32 MB hard / 8 MB for 60 s, would disconnect
    # it, which the adapter counts as lost; the benchmark fails then).
    command += ["--dir", workdir, "--loglevel", "warning", "--client-output-buffer-limit", "pubsub 512mb 256mb 60"]
    proc = subprocess.Popen(pinned(command, CPU_B), stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        kill_group(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"redis-server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.02)
    raise BenchError("redis-server did not answer")


def child(role: str, cpu: int, secret: str, *options: str) -> contextlib.AbstractContextManager[Child]:
    return started(pinned([sys.executable, str(NODE), role, *options], cpu), role, "ready", secret)


class Bench:
    def __init__(self, counts: Counts, url: str) -> None:
        self.counts = counts
        self.url = url
        self.secret = secrets.token_hex(32)

    def alight(self) -> dict[str, Any]:
        n = str(self.counts.messages)
        with (
            child("sink", CPU_B, self.secret, "--url", self.url, "--count", n, "--subscribers", "4") as sink,
            child("driver", CPU_A, self.secret, "--url", self.url, "--count", n) as driver,
        ):
            sent = driver.result()
            got = sink.result()
        if sent["dropped"] or got["lost"]:
            raise BenchError(f"alight over Redis: {sent['dropped']} dropped, {got['lost']} lost")
        return {**sent, **got, "per_s": self.counts.messages / (got["last_at"] - sent["started_at"])}

    def raw(self, frame: int) -> dict[str, Any]:
        n = str(self.counts.messages)
        options = ("--url", self.url, "--count", n, "--frame", str(frame))
        with (
            child("raw_sink", CPU_B, self.secret, "--url", self.url, "--count", n) as sink,
            child("raw_send", CPU_A, self.secret, *options) as sender,
        ):
            sent = sender.result()
            got = sink.result()
        return {**sent, **got, "per_s": self.counts.messages / (got["last_at"] - sent["started_at"])}

    def figures(self) -> list[Figure]:
        runs = [self.alight() for _ in range(self.counts.repeats)]
        mine = max(runs, key=lambda run: float(run["per_s"]))
        raws = [self.raw(int(mine["frame_bytes"])) for _ in range(self.counts.repeats)]
        raw = max(raws, key=lambda run: float(run["per_s"]))
        return [
            Figure(
                "redis.broadcast",
                round(mine["per_s"]),
                "messages/s",
                "raw redis-py asyncio PUBLISH (pipelined 512) -> SUBSCRIBE",
                round(raw["per_s"]),
                round(mine["per_s"] / raw["per_s"], 4),
                "-",
                None,
                {
                    "messages": self.counts.messages,
                    "frame_bytes": mine["frame_bytes"],
                    "subscribers_on_b": 4,
                    "runs": [round(r["per_s"]) for r in runs],
                    "raw_runs": [round(r["per_s"]) for r in raws],
                    "lost": mine["lost"],
                    "dropped": mine["dropped"],
                },
            )
        ]


def main() -> None:
    parser = argument_parser(__doc__)
    args = parser.parse_args()
    exit_on_sigterm()
    counts = QUICK if args.quick else FULL
    with redis_server() as url:
        figures = Bench(counts, url).figures()

    def table() -> None:
        for f in figures:
            print(f"{f.bench}: {f.value:,} {f.unit} vs {f.baseline_value:,} ({f.baseline}) = {f.ratio}x  {f.detail}")

    emit(figures, args.json, table)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
