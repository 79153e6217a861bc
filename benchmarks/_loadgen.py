"""Load generator for the channel benchmarks: many Phoenix V2 WebSocket clients in one process.

Run by ``benchmarks/channels.py`` as its own OS process, pinned to CPU 1 while the server
under test is pinned to CPU 0 (``os.sched_setaffinity``; on a 2-core machine the two never
share a core). It prints exactly one JSON object on stdout: the figures of the mode it ran,
plus ``loadgen_cpu`` and ``server_cpu`` (CPU seconds / wall seconds of this process and of
``--server-pid`` over the measured window).

Is the load generator the limit? In ``fanout`` the raw servers reply to the control message
with ``sent_in``, their own time to write every broadcast; the report puts it beside
``seconds``, the time until the last frame was received. Loopback sends never wait for the
reader (200 frames of 100 bytes fit any socket buffer), so if this process were slower than
the server, frames would pile up in the socket buffers and ``seconds`` would exceed
``sent_in``; measured, they differ by a few ms (e.g. 1.0895 s vs 1.0858 s at 184k
deliveries/s on picows). Against ``_raw_servers.py blast`` (frames written in one burst per
client) this process consumes ~2M frames/s, over 10x the fastest real server. Its CPU share
near 1.0 in fan-out is the cost of one ``recv`` per small segment, which shrinks as data
batches up; it is not a backlog.

``python benchmarks/_loadgen.py MODE --url ws://127.0.0.1:P/socket/websocket?vsn=2.0.0 ...``

Modes (every client connects and joins `TOPIC` with a real ``phx_join`` first, except in
``join``):

- ``fanout``: ``--clients`` N, ``--broadcasts`` B, ``--size`` S bytes per frame,
  ``--rounds`` R. A separate control client sends one ``bench_broadcast`` control message
  (see ``_raw_servers.py``) asking for B broadcasts; the clock runs from just before that
  message is sent to the moment the last client has received its B-th frame.
  ``deliveries_per_s`` = N x B / that time, best of R rounds on the same connections.
- ``latency``: N clients; the control client asks for one broadcast every 1/``--rate``
  seconds for ``--duration`` seconds, each carrying its send time (``time.perf_counter``,
  CLOCK_MONOTONIC, read and compared in this one process). Percentiles of
  receive time - send time over every delivery, in ms.
- ``ping``: N clients each send ``--pings`` ``ping`` pushes one after another (the next
  one when the reply to the last has come), all clients at once; reply latency percentiles.
  This is a closed loop with N pings always in flight, so its p99 is latency under full
  load (about N / the server's ping throughput), not the latency of an idle server.
- ``join``: N clients connect, then all send ``phx_join`` at once; ``joins_per_s`` is N /
  time from the first join sent to the last ok reply; best of ``--rounds``, each round
  joining a new topic ``bench:fanout:<i>`` (keep rounds under Phoenix's 100 channels a socket).
- ``memory``: N clients connect and join and stay idle; ``bytes_per_connection`` is the
  growth of the server's RSS (``/proc/<--server-pid>/statm``) / N, read after ``--settle`` s.

Clients are picows (Cython) ``WSListener`` objects on uvloop; a frame costs one Python
callback and, in ``fanout``, a counter increment (no JSON decoding: the first frame each
client gets is decoded and checked, and every round checks that exactly N x B frames came).
Sockets are made by `socket_for` with ``SO_LINGER 0`` (closing sends RST: no TIME_WAIT to
exhaust ports between runs) and, for 5,000 clients and more, bound to several 127.0.0.x
source addresses (`SOURCES_FROM`, `PER_SOURCE`) with ``IP_BIND_ADDRESS_NO_PORT``.

Bounded: every wait has a timeout; the whole run stops itself after ``--time-limit`` seconds,
or at once when the server closes a connection (exit status 1 and ``{"error": ...}``);
connections are always closed on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop
from picows import WSError, WSFrame, WSListener, WSMsgType, WSParsedURL, WSTransport, ws_connect

from alight.benchmarks._procs import cpu_seconds, percentile, rss_bytes

TOPIC = "bench:fanout"
"""The topic every measured client joins."""

CONTROL_TOPIC = "bench:control"
"""The topic the control client joins and sends `CONTROL_EVENT` on."""

CONTROL_EVENT = "bench_broadcast"
BROADCAST_EVENT = "msg"

CONNECT_CONCURRENCY = 128
"""Connections being opened at once (more only overflows the listen backlog)."""

SOURCES_FROM = 5000
"""From this many clients on, spread them over several 127.0.0.x source addresses."""

PER_SOURCE = 2500
"""Clients per source address when spreading."""

REQUEST_TIMEOUT = 10.0
"""Seconds to wait for any one reply (the Phoenix client's push timeout)."""

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h: pick the port at connect(), by the full 4-tuple


class LoadgenError(Exception):
    """The run could not be completed (a refused join, a timeout, a wrong frame count)."""


def padded_payload(size: int, ts: float = 0.0, seq: int = 0) -> dict[str, Any]:
    """A broadcast payload whose frame ``[null,null,TOPIC,"msg",payload]`` is about ``size`` bytes."""
    payload: dict[str, Any] = {"seq": seq, "ts": ts, "pad": ""}
    overhead = len(orjson.dumps([None, None, TOPIC, BROADCAST_EVENT, payload]))
    payload["pad"] = "x" * max(0, size - overhead)
    return payload


class Window:
    """Wall and CPU time of this process (and of the server, when its pid is known)."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        self.server = cpu_seconds(server_pid) if server_pid else 0.0

    def shares(self) -> dict[str, float | None]:
        wall = time.perf_counter() - self.wall
        server = (cpu_seconds(self.server_pid) - self.server) / wall if self.server_pid else None
        return {
            "loadgen_cpu": round((time.process_time() - self.cpu) / wall, 3),
            "server_cpu": None if server is None else round(server, 3),
        }


Sink = Callable[["Client", WSFrame], None]


class Client(WSListener):
    """One Phoenix V2 socket: a request/reply helper and a per-phase frame `sink`."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: WSTransport | None = None
        self.sink: Sink = _reply_sink
        self.refs = 0
        self.join_ref: str | None = None
        self.waiting: tuple[str, asyncio.Future[Any]] | None = None
        self.count = 0
        self.stray = 0
        self.closed = False
        self.on_lost: Callable[[], None] | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.sink(self, frame)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        if self.waiting is not None and not self.waiting[1].done():
            self.waiting[1].set_exception(LoadgenError("connection closed by the server"))
        if self.on_lost is not None:
            self.on_lost()

    def push(self, topic: str, event: str, payload: Any) -> asyncio.Future[Any]:
        """Send one message; the future gets the reply's ``response`` (``status`` must be ok)."""
        assert self.transport is not None
        self.refs += 1
        ref = str(self.refs)
        if event == "phx_join":
            self.join_ref = ref
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting = (ref, waiter)
        self.transport.send(WSMsgType.TEXT, orjson.dumps([self.join_ref, ref, topic, event, payload]))
        return waiter

    async def request(self, topic: str, event: str, payload: Any) -> Any:
        return await asyncio.wait_for(self.push(topic, event, payload), REQUEST_TIMEOUT)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.disconnect(graceful=False)


def _reply_sink(client: Client, frame: WSFrame) -> None:
    message = orjson.loads(frame.get_payload_as_bytes())
    waiting = client.waiting
    if waiting is None or message[3] != "phx_reply" or message[1] != waiting[0]:
        client.stray += 1
        return
    client.waiting = None
    if waiting[1].done():
        return
    reply = message[4]
    if reply.get("status") == "ok":
        waiting[1].set_result(reply.get("response"))
    else:
        waiting[1].set_exception(LoadgenError(f"{message[3]} {message[2]}: {reply}"))


# -- connections --------------------------------------------------------------------------


def socket_for(source: str | None) -> Callable[[WSParsedURL], socket.socket]:
    def make(url: WSParsedURL) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
        sock.setblocking(False)
        return sock

    return make


def _source(index: int, total: int) -> str | None:
    if total < SOURCES_FROM:
        return None
    spread = math.ceil(total / PER_SOURCE)
    return f"127.0.0.{2 + index % spread}"


class Crowd:
    """All the clients of one run; `close` closes every one of them.

    `lost` fails as soon as the server closes any connection before `close`, so that a run
    against a server that drops clients stops at once instead of at its time limit.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.clients: list[Client] = []
        self.closing = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def lose(self) -> None:
        if not self.closing and not self.lost.done():
            self.lost.set_exception(LoadgenError("the server closed a connection"))

    async def open(self, n: int, topic: str | None, deadline: float) -> list[Client]:
        """Connect ``n`` clients (joining ``topic`` if given) with bounded concurrency."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        opened: list[Client] = []

        async def one(index: int) -> None:
            async with gate:
                _, listener = await ws_connect(
                    Client,
                    self.url,
                    socket_factory=socket_for(_source(index, n)),
                    websocket_handshake_timeout=REQUEST_TIMEOUT,
                    enable_auto_pong=True,
                )
                assert isinstance(listener, Client)
                self.clients.append(listener)
                listener.on_lost = self.lose
                if topic is not None:
                    await listener.request(topic, "phx_join", {})
                opened.append(listener)

        await _bounded(asyncio.gather(*(one(i) for i in range(n))), deadline, f"opening {n} clients")
        return opened

    def close(self) -> None:
        self.closing = True
        for client in self.clients:
            client.close()


async def _bounded(awaitable: Awaitable[Any], deadline: float, what: str) -> Any:
    remaining = deadline - time.monotonic()
    try:
        return await asyncio.wait_for(awaitable, max(0.001, remaining))
    except TimeoutError:
        raise LoadgenError(f"timed out {what}") from None


async def _heartbeat(clients: list[Client], deadline: float) -> None:
    """One heartbeat from every client (keeps server idle timeouts away between phases)."""
    await _bounded(asyncio.gather(*(c.request("phoenix", "heartbeat", {}) for c in clients)), deadline, "heartbeat")


# -- modes --------------------------------------------------------------------------------


class Fanout:
    """Counts broadcast frames; `done` resolves when every client has ``expect`` of them."""

    def __init__(self, clients: list[Client]) -> None:
        self.clients = clients
        self.expect = 0
        self.complete = 0
        self.finished_at = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.bad_first: str | None = None

    def arm(self, expect: int) -> None:
        self.expect, self.complete = expect, 0
        self.done = asyncio.get_running_loop().create_future()
        for client in self.clients:
            client.count = 0
            client.sink = self.first

    def disarm(self) -> None:
        for client in self.clients:
            client.sink = _reply_sink

    def first(self, client: Client, frame: WSFrame) -> None:
        message = orjson.loads(frame.get_payload_as_bytes())
        if message[2:4] != [TOPIC, BROADCAST_EVENT] and self.bad_first is None:
            self.bad_first = repr(message)[:200]
        client.sink = self.count
        self.count(client, frame)

    def count(self, client: Client, frame: WSFrame) -> None:
        client.count += 1
        if client.count == self.expect:
            self.complete += 1
            if self.complete == len(self.clients):
                self.finished_at = time.perf_counter()
                self.done.set_result(None)


async def fanout(args: argparse.Namespace, crowd: Crowd, deadline: float) -> dict[str, Any]:
    clients = await crowd.open(args.clients, TOPIC, deadline)
    (control,) = await crowd.open(1, CONTROL_TOPIC, deadline)
    counter = Fanout(clients)
    payload = padded_payload(args.size)
    order = {
        "topic": TOPIC,
        "event": BROADCAST_EVENT,
        "payload": payload,
        "count": args.broadcasts,
        "burst": args.burst,
    }
    total = args.clients * args.broadcasts
    rounds: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        await _heartbeat(clients, deadline)
        counter.arm(args.broadcasts)
        window = Window(args.server_pid)
        started = time.perf_counter()
        replied = control.push(CONTROL_TOPIC, CONTROL_EVENT, order)
        await _bounded(counter.done, deadline, f"waiting for {total} deliveries")
        elapsed = counter.finished_at - started
        shares = window.shares()
        response = await _bounded(replied, deadline, "waiting for the control reply")
        await asyncio.sleep(0.05)  # late extra frames would show in the count below
        received = sum(c.count for c in clients)
        counter.disarm()
        if received != total or counter.bad_first is not None:
            raise LoadgenError(f"expected {total} broadcast frames, got {received}; first frame {counter.bad_first}")
        sent_in = response.get("sent_in") if isinstance(response, dict) else None
        server = {} if sent_in is None else {"server_sent_in": round(sent_in, 4)}
        rounds.append({"deliveries_per_s": round(total / elapsed), "seconds": round(elapsed, 4), **server, **shares})
    best = max(rounds, key=lambda r: r["deliveries_per_s"])
    frame_bytes = len(orjson.dumps([None, None, TOPIC, BROADCAST_EVENT, payload]))
    return {"deliveries_per_s": best["deliveries_per_s"], "frame_bytes": frame_bytes, "best": best, "rounds": rounds}


async def latency(args: argparse.Namespace, crowd: Crowd, deadline: float) -> dict[str, Any]:
    clients = await crowd.open(args.clients, TOPIC, deadline)
    (control,) = await crowd.open(1, CONTROL_TOPIC, deadline)
    samples: list[float] = []
    sent_in: list[float] = []  # the server's own time to write each broadcast, when it says
    broadcasts = max(1, round(args.rate * args.duration))
    expect = len(clients) * broadcasts
    all_delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def sink(client: Client, frame: WSFrame) -> None:
        now = time.perf_counter()
        message = orjson.loads(frame.get_payload_as_bytes())
        if message[3] != BROADCAST_EVENT:
            client.stray += 1
            return
        samples.append(now - message[4]["ts"])
        if len(samples) == expect:
            all_delivered.set_result(None)

    await _heartbeat(clients, deadline)
    for client in clients:
        client.sink = sink
    window = Window(args.server_pid)
    start = time.perf_counter()
    for seq in range(broadcasts):
        await asyncio.sleep(max(0.0, start + seq / args.rate - time.perf_counter()))
        payload = padded_payload(args.size, time.perf_counter(), seq)
        response = await _bounded(_pushed(control, payload), deadline, "control reply")
        if isinstance(response, dict) and "sent_in" in response:
            sent_in.append(response["sent_in"] * 1000)
    await _bounded(all_delivered, deadline, "waiting for the last broadcast")
    await asyncio.sleep(0.05)  # late extra frames would show in the count below
    shares = window.shares()
    if len(samples) != expect:
        raise LoadgenError(f"expected {expect} deliveries, got {len(samples)}")
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": round(percentile(ms, 0.5), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "max_ms": round(max(ms), 3),
        **({"server_sent_in_p99_ms": round(percentile(sent_in, 0.99), 3)} if sent_in else {}),
        "broadcasts": broadcasts,
        "deliveries": len(ms),
        **shares,
    }


async def _pushed(control: Client, payload: dict[str, Any]) -> Any:
    order = {"topic": TOPIC, "event": BROADCAST_EVENT, "payload": payload, "count": 1}
    return await control.request(CONTROL_TOPIC, CONTROL_EVENT, order)


class Pinger:
    """Closed-loop pings driven from the frame callback: a reply stamps the latency and sends
    the next ping at once (no task wake-up per ping, so the load generator stays cheap)."""

    def __init__(self, clients: list[Client], pings: int) -> None:
        self.pings = pings
        self.samples: list[float] = []
        self.sent_at: dict[Client, float] = {}
        self.finished = 0
        self.clients = clients
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        for client in self.clients:
            client.count, client.sink = 0, self.reply
            self.send(client)

    def send(self, client: Client) -> None:
        assert client.transport is not None
        client.refs += 1
        self.sent_at[client] = time.perf_counter()
        frame = [client.join_ref, str(client.refs), TOPIC, "ping", {"i": client.count}]
        client.transport.send(WSMsgType.TEXT, orjson.dumps(frame))

    def reply(self, client: Client, frame: WSFrame) -> None:
        now = time.perf_counter()
        message = orjson.loads(frame.get_payload_as_bytes())
        if message[1] != str(client.refs) or message[4].get("status") != "ok":
            client.stray += 1
            return
        self.samples.append(now - self.sent_at[client])
        client.count += 1
        if client.count < self.pings:
            self.send(client)
            return
        client.sink = _reply_sink
        self.finished += 1
        if self.finished == len(self.clients):
            self.done.set_result(None)


async def ping(args: argparse.Namespace, crowd: Crowd, deadline: float) -> dict[str, Any]:
    clients = await crowd.open(args.clients, TOPIC, deadline)
    pinger = Pinger(clients, args.pings)
    window = Window(args.server_pid)
    pinger.start()
    await _bounded(pinger.done, deadline, "pings")
    shares = window.shares()
    ms = [s * 1000 for s in pinger.samples]
    return {
        "p50_ms": round(percentile(ms, 0.5), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "pings": len(ms),
        "pings_per_s": round(len(ms) / (time.perf_counter() - window.wall)),
        **shares,
    }


async def join(args: argparse.Namespace, crowd: Crowd, deadline: float) -> dict[str, Any]:
    clients = await crowd.open(args.clients, None, deadline)
    rounds: list[dict[str, Any]] = []
    for i in range(args.rounds):
        # A fresh topic each round: every round is N first joins (no rejoin semantics involved).
        topic = f"{TOPIC}:{i}"
        window = Window(args.server_pid)
        await _bounded(asyncio.gather(*(c.push(topic, "phx_join", {}) for c in clients)), deadline, "joins")
        elapsed = time.perf_counter() - window.wall
        rounds.append({"joins_per_s": round(len(clients) / elapsed), "seconds": round(elapsed, 4), **window.shares()})
    best = max(rounds, key=lambda r: r["joins_per_s"])
    return {"joins_per_s": best["joins_per_s"], "best": best, "rounds": rounds}


async def memory(args: argparse.Namespace, crowd: Crowd, deadline: float) -> dict[str, Any]:
    if not args.server_pid:
        raise LoadgenError("memory mode needs --server-pid")
    await asyncio.sleep(args.settle)
    before = rss_bytes(args.server_pid)
    clients = await crowd.open(args.clients, TOPIC, deadline)
    await _heartbeat(clients, deadline)
    await asyncio.sleep(args.settle)
    after = rss_bytes(args.server_pid)
    return {
        "bytes_per_connection": round((after - before) / len(clients), 1),
        "rss_before": before,
        "rss_after": after,
        "connections": len(clients),
    }


MODES: dict[str, Callable[[argparse.Namespace, Crowd, float], Awaitable[dict[str, Any]]]] = {
    "fanout": fanout,
    "latency": latency,
    "ping": ping,
    "join": join,
    "memory": memory,
}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run one mode within ``args.time_limit`` seconds; always close every client."""
    deadline = time.monotonic() + args.time_limit
    crowd = Crowd(args.url)
    mode = asyncio.ensure_future(MODES[args.mode](args, crowd, deadline))
    try:
        racers: set[asyncio.Future[Any]] = {mode, crowd.lost}
        await asyncio.wait(racers, timeout=args.time_limit, return_when=asyncio.FIRST_COMPLETED)
        if crowd.lost.done():
            crowd.lost.result()  # raises: a connection was lost
        if not mode.done():
            raise LoadgenError(f"timed out {args.mode} after {args.time_limit} s")
        result = mode.result()
    finally:
        mode.cancel()
        crowd.close()
        if crowd.lost.done():
            crowd.lost.exception()  # retrieved: a loss after the end is not an error
        else:
            crowd.lost.cancel()
        with contextlib.suppress(asyncio.CancelledError, LoadgenError, OSError, WSError):
            await mode
        await asyncio.sleep(0)
    stray = sum(c.stray for c in crowd.clients)
    return {"mode": args.mode, "clients": args.clients, **result, "stray_frames": stray}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/socket/websocket?vsn=2.0.0")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--broadcasts", type=int, default=200, help="fanout: broadcasts per round")
    parser.add_argument("--rounds", type=int, default=3, help="fanout, join: rounds, best is reported")
    parser.add_argument("--burst", type=int, default=1, help="fanout: broadcasts the server makes per loop turn")
    parser.add_argument("--size", type=int, default=100, help="bytes per broadcast frame")
    parser.add_argument("--rate", type=float, default=10.0, help="latency: broadcasts per second")
    parser.add_argument("--duration", type=float, default=5.0, help="latency: seconds")
    parser.add_argument("--pings", type=int, default=10, help="ping: sequential pings per client")
    parser.add_argument("--settle", type=float, default=1.0, help="memory: seconds before each RSS reading")
    parser.add_argument("--server-pid", type=int, default=0, help="for RSS and CPU readings")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to this CPU")
    parser.add_argument("--time-limit", type=float, default=120.0, help="stop after this long in any case")
    args = parser.parse_args(argv)
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost"):
        parser.error("the load generator only talks to loopback")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {args.cpu})
    try:
        result = uvloop.run(run(args))
    except (LoadgenError, OSError, WSError) as error:
        print(json.dumps({"mode": args.mode, "error": f"{type(error).__name__}: {error}"}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
