"""Benchmarks of alight's channels against raw WebSocket broadcast servers.

Run ``python benchmarks/channels.py`` for a table, ``--json`` for one JSON object per
figure and line (``bench``, ``value``, ``unit``, ``baseline``, ``baseline_value``,
``ratio``, plus ``target``, ``met``, ``clients`` and ``detail``, the load generator's own
report for both sides), ``--quick`` for small counts (a smoke test of a few seconds),
``--target none`` for the baselines alone (``value``, ``ratio`` and ``met`` are then null).

Every figure is measured on a fresh server process, the baseline and alight in the same run,
one after the other. The servers are ``_raw_servers.py`` (picows, websockets: one process
each, uvloop) and alight's benchmark app, started by `alight_command` (the hook to keep in
step with alight's CLI). ``ratio`` is ``value / baseline_value``.

How the two cores are shared: the server process is pinned to CPU 0 and the load
generator (``_loadgen.py``, its own process) to CPU 1 with ``os.sched_setaffinity``; this
process only waits. Each figure's ``detail`` carries ``server_cpu`` and ``loadgen_cpu``
(CPU seconds / wall seconds over the measured window) and, for fan-out, ``server_sent_in``
(the server's own time to write every broadcast) next to ``seconds`` (first broadcast
asked to last frame received): when the two are equal the load generator kept up.
``channels.loadgen_capacity`` is the load generator's own ceiling, measured against the
``blast`` server (frames pre-framed and written in one burst per client); it must be well
above the fastest fan-out measured.

- ``channels.fanout_{1000,5000}.{websockets,picows}`` (deliveries/s): N clients joined to one
  topic; one control message asks for B broadcasts of ~100-byte frames; N x B / (time from
  the control message sent to the last frame received by every client); best of R rounds.
  The alight figure is measured once per N and compared with both raw servers.
- ``channels.fanout_burst_1000.picows``: the same with the broadcasts made `BURST` per
  loop turn (as messages that arrive together are), against raw picows doing the same:
  a raw server still writes every frame with its own system call; alight writes what a
  connection got in one turn with one (``transports.websocket.Coalescer``).
- ``channels.latency_p99`` (ms): 1,000 clients, 10 broadcasts/s, each carrying its send
  time; p99 of delivery time over every client and broadcast.
- ``channels.connection_memory`` (bytes): server RSS growth (``/proc/PID/statm``) / N for
  10,000 idle joined connections (spread over several 127.0.0.x source addresses).
- ``channels.join_rate`` (joins/s): 1,000 connected clients join at once; best of rounds.
- ``channels.ping_p99`` (ms): 1,000 clients each pinging in a closed loop.
  For join and ping the raw server does as little per message as the load generator, so
  those baselines can be bounded by both cores; see their ``loadgen_cpu``.

The non-fan-out figures use the picows server as their baseline. Network is loopback only;
every server and load generator is killed (its whole process group) on the way out.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from alight.benchmarks._procs import CPUS, can_pin, free_port, kill_group, pinned
from alight.benchmarks._report import argument_parser, emit, exit_on_sigterm

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
SERVER_CPU, LOADGEN_CPU = CPUS
READY_TIMEOUT = 20.0
"""Seconds a server has to answer ``GET /health`` (any HTTP status counts as up)."""


class BenchError(Exception):
    """A server or the load generator failed; the message says which and why."""


class ServerStartError(BenchError):
    """A server exited or did not answer HTTP within `READY_TIMEOUT`."""


def alight_command(port: int) -> list[str]:
    """HOOK (alight): the command that starts alight's channel benchmark app on ``port``.

    ``benchmarks/channel_app.py`` (written with alight's channel server) must bind 127.0.0.1
    and serve what the load generator speaks (the same as ``_raw_servers.py``): ``GET
    /health``; a socket at ``/socket`` (WebSocket, vsn 2.0.0) whose channel on ``bench:*``
    tracks no presence and joins with ok ``{}``; ``ping`` -> reply ok with the payload;
    ``bench_broadcast`` ``{"topic", "event", "payload", "count"}`` -> endpoint
    ``broadcast(topic, event, payload)`` ``count`` times, then reply ok (optionally
    ``{"sent_in": seconds}``). ``heartbeat`` and ``phx_join`` as Phoenix.
    """
    return [sys.executable, "-m", "alight.cli", "run", "benchmarks.channel_app:app", "--port", str(port)]


def alight_missing() -> str | None:
    """Why alight's benchmark app cannot run yet, or None when it looks runnable."""
    try:
        channels = importlib.import_module("alight.channels")
    except ImportError as error:
        return f"alight.channels cannot be imported ({error})"
    if not hasattr(channels, "Endpoint"):
        return "alight.channels has no Endpoint yet"
    if not (HERE / "channel_app.py").exists():
        return "benchmarks/channel_app.py does not exist yet"
    return None


def raw_command(kind: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [sys.executable, str(HERE / "_raw_servers.py"), kind, "--port", str(port)]

    return command


# -- processes ----------------------------------------------------------------------------


def _tail(log: IO[bytes], limit: int = 1500) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:].strip()


def _answers_http(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    pid: int
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/socket/websocket?vsn=2.0.0"


@contextlib.contextmanager
def server(name: str, command: Callable[[int], list[str]]) -> Iterator[Server]:
    """Start a server pinned to `SERVER_CPU`, wait until it answers HTTP, stop it afterwards."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            pinned(command(port), SERVER_CPU),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not _answers_http(port):
                if proc.poll() is not None:
                    raise ServerStartError(f"{name} server exited with {proc.returncode}: {_tail(log)}")
                if time.monotonic() > deadline:
                    raise ServerStartError(f"{name} server not up after {READY_TIMEOUT} s: {_tail(log)}")
                time.sleep(0.05)
            yield Server(name, proc.pid, port)
        finally:
            kill_group(proc)


def loadgen(mode: str, target: Server, time_limit: float, **options: float) -> dict[str, Any]:
    """Run ``_loadgen.py MODE`` against ``target`` pinned to `LOADGEN_CPU`; its JSON report."""
    command = [
        sys.executable,
        str(HERE / "_loadgen.py"),
        mode,
        "--url",
        target.url,
        "--server-pid",
        str(target.pid),
        "--time-limit",
        str(time_limit),
    ]
    if can_pin():
        command += ["--cpu", str(LOADGEN_CPU)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=time_limit + 15)
    except subprocess.TimeoutExpired:
        raise BenchError(f"load generator ({mode} on {target.name}) did not stop in time") from None
    finally:
        kill_group(proc)
    lines = out.strip().splitlines()
    try:
        report: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise BenchError(f"load generator ({mode} on {target.name}) printed no report: {err[-1500:]}") from None
    if proc.returncode != 0 or "error" in report:
        raise BenchError(f"load generator ({mode} on {target.name}): {report.get('error')} {err[-800:]}")
    return report


# -- figures ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    fanout: tuple[int, int]
    broadcasts: int
    fanout_rounds: tuple[int, int]
    latency_clients: int
    latency_duration: float
    ping_clients: int
    pings: int
    join_clients: int
    join_rounds: int
    memory_clients: int
    settle: float


FULL = Counts((1000, 5000), 200, (3, 2), 1000, 5.0, 1000, 10, 1000, 5, 10_000, 1.0)
QUICK = Counts((100, 200), 20, (1, 1), 100, 0.5, 100, 3, 100, 2, 200, 0.1)
FANOUT_NAMES = (1000, 5000)
BURST = 10
"""Broadcasts per loop turn in ``fanout_burst``: messages arriving together."""


@dataclass(frozen=True, slots=True)
class Figure:
    bench: str
    value: float | None
    unit: str
    baseline: str
    baseline_value: float
    ratio: float | None
    target: str
    met: bool | None
    clients: int
    detail: dict[str, Any] = field(default_factory=dict)


def _figure(
    bench: str,
    unit: str,
    baseline: str,
    base: dict[str, Any],
    mine: dict[str, Any] | None,
    key: str,
    target: str,
    met: Callable[[float, float], bool],
    clients: int,
) -> Figure:
    base_value = float(base[key])
    value = None if mine is None else float(mine[key])
    ratio = None if value is None or not base_value else round(value / base_value, 4)
    return Figure(
        bench,
        value,
        unit,
        baseline,
        base_value,
        ratio,
        target,
        None if value is None else met(value, base_value),
        clients,
        {"baseline": base, "value": mine},
    )


Measure = Callable[[Server], dict[str, Any]]


def _at_least(share: float) -> Callable[[float, float], bool]:
    def met(value: float, baseline: float) -> bool:
        return value >= share * baseline

    return met


class Bench:
    """Runs each measurement on the baseline server(s) and, while it works, on alight."""

    def __init__(self, counts: Counts, with_alight: bool) -> None:
        self.counts = counts
        self.alight_skipped: str | None = None if with_alight else "--target none"
        if with_alight:
            self.alight_skipped = alight_missing()
            if self.alight_skipped:
                print(f"channels: alight figures skipped: {self.alight_skipped}", file=sys.stderr)

    def raw(self, kind: str, measure: Measure) -> dict[str, Any]:
        with server(f"raw {kind}", raw_command(kind)) as target:
            return measure(target)

    def alight(self, measure: Measure) -> dict[str, Any] | None:
        if self.alight_skipped:
            return None
        try:
            with server("alight", alight_command) as target:
                return measure(target)
        except ServerStartError as error:
            print(f"channels: alight figures skipped: {error}", file=sys.stderr)
            self.alight_skipped = str(error)  # it does not start: do not try again for each figure
            return None
        except BenchError as error:
            print(f"channels: alight figure skipped: {error}", file=sys.stderr)
            return None

    def measure(self) -> list[Figure]:
        c = self.counts
        figures: list[Figure] = []
        fastest = 0.0
        for name, clients, rounds in zip(FANOUT_NAMES, c.fanout, c.fanout_rounds, strict=True):
            limit = 60.0 + clients * c.broadcasts * rounds / 20_000

            def fan(target: Server, n: int = clients, rounds: int = rounds, limit: float = limit) -> dict[str, Any]:
                return loadgen("fanout", target, limit, clients=n, broadcasts=c.broadcasts, rounds=rounds)

            bases = {kind: self.raw(kind, fan) for kind in ("websockets", "picows")}
            mine = self.alight(fan)
            for kind, base in bases.items():
                target, share = ">= 1.0x baseline", 1.0
                figures.append(
                    _figure(
                        f"channels.fanout_{name}.{kind}",
                        "deliveries/s",
                        f"raw {kind} broadcast server",
                        base,
                        mine,
                        "deliveries_per_s",
                        target,
                        _at_least(share),
                        clients,
                    )
                )
                fastest = max(fastest, float(base["deliveries_per_s"]))
            if mine is not None:
                fastest = max(fastest, float(mine["deliveries_per_s"]))
            if name == FANOUT_NAMES[0]:
                capacity = self.raw("blast", fan)
                figures.append(
                    Figure(
                        "channels.loadgen_capacity",
                        float(capacity["deliveries_per_s"]),
                        "deliveries/s",
                        f"fastest fanout_{name} measured",
                        fastest,
                        round(capacity["deliveries_per_s"] / fastest, 4),
                        "> 1.0x baseline",
                        capacity["deliveries_per_s"] > fastest,
                        clients,
                        {"value": capacity},
                    )
                )
        clients, rounds = c.fanout[0], c.fanout_rounds[0]

        def bursts(target: Server) -> dict[str, Any]:
            limit = 60.0 + clients * c.broadcasts * rounds / 20_000
            options = {"clients": clients, "broadcasts": c.broadcasts, "rounds": rounds, "burst": BURST}
            return loadgen("fanout", target, limit, **options)

        base, mine = self.raw("picows", bursts), self.alight(bursts)
        figures.append(
            _figure(
                f"channels.fanout_burst_{FANOUT_NAMES[0]}.picows",
                "deliveries/s",
                f"raw picows broadcast server, {BURST} broadcasts a loop turn",
                base,
                mine,
                "deliveries_per_s",
                ">= 1.0x baseline",
                _at_least(1.0),
                clients,
            )
        )
        picows = "raw picows server"

        def lat(target: Server) -> dict[str, Any]:
            return loadgen(
                "latency",
                target,
                60.0 + c.latency_duration,
                clients=c.latency_clients,
                duration=c.latency_duration,
                rate=10,
            )

        figures.append(
            _figure(
                "channels.latency_p99",
                "ms",
                picows,
                self.raw("picows", lat),
                self.alight(lat),
                "p99_ms",
                "<= 15 ms",
                lambda v, b: v <= 15.0,
                c.latency_clients,
            )
        )

        def mem(target: Server) -> dict[str, Any]:
            return loadgen("memory", target, 120.0, clients=c.memory_clients, settle=c.settle)

        figures.append(
            _figure(
                "channels.connection_memory",
                "bytes",
                picows,
                self.raw("picows", mem),
                self.alight(mem),
                "bytes_per_connection",
                "<= 16384 B",
                lambda v, b: v <= 16384,
                c.memory_clients,
            )
        )

        def joins(target: Server) -> dict[str, Any]:
            return loadgen("join", target, 60.0, clients=c.join_clients, rounds=c.join_rounds)

        figures.append(
            _figure(
                "channels.join_rate",
                "joins/s",
                picows,
                self.raw("picows", joins),
                self.alight(joins),
                "joins_per_s",
                "-",
                lambda v, b: True,
                c.join_clients,
            )
        )

        def pings(target: Server) -> dict[str, Any]:
            return loadgen("ping", target, 60.0, clients=c.ping_clients, pings=c.pings)

        figures.append(
            _figure(
                "channels.ping_p99",
                "ms",
                picows,
                self.raw("picows", pings),
                self.alight(pings),
                "p99_ms",
                "-",
                lambda v, b: True,
                c.ping_clients,
            )
        )
        return figures


# -- the report ---------------------------------------------------------------------------


def cores() -> str:
    if can_pin():
        return f"server pinned to CPU {SERVER_CPU}, load generator to CPU {LOADGEN_CPU} (os.sched_setaffinity)"
    return f"not pinned ({os.cpu_count()} CPUs): server and load generator share the cores"


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.3f}" if unit == "ms" else f"{value:,.0f}"


def _table(figures: list[Figure]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="alight.channels benchmarks",
        caption=f"baseline: the raw server named by the bench for fanout_*, raw picows otherwise; {cores()}",
    )
    for column in ("bench", "clients", "value", "baseline", "unit", "ratio", "target", "met", "cpu srv/gen"):
        table.add_column(column, justify="left" if column in ("bench", "unit", "target") else "right")
    for f in figures:
        side = f.detail.get("baseline") or f.detail.get("value") or {}
        best = side.get("best", side)
        cpu = f"{best['server_cpu']}/{best['loadgen_cpu']}" if "loadgen_cpu" in best else "-"
        met = "-" if f.met is None else ("yes" if f.met else "[red]no[/red]")
        table.add_row(
            f.bench.removeprefix("channels."),
            str(f.clients),
            _number(f.value, f.unit),
            _number(f.baseline_value, f.unit),
            f.unit,
            "-" if f.ratio is None else f"{f.ratio:.2f}",
            f.target,
            met,
            cpu,
        )
    Console(width=max(Console().width, 130)).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument(
        "--target",
        choices=("alight", "none"),
        default="alight",
        help="what to measure against the raw servers (none: the baselines only)",
    )
    args = parser.parse_args(argv)
    exit_on_sigterm()
    print(f"channels: {cores()}", file=sys.stderr)
    try:
        figures = Bench(QUICK if args.quick else FULL, args.target == "alight").measure()
    except BenchError as error:
        print(f"channels: {error}", file=sys.stderr)
        return 1
    emit(figures, args.json, lambda: _table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
