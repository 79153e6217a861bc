"""One process of ``benchmarks/cluster.py``: a cluster node or a raw pyzmq peer.

``python benchmarks/_cluster_node.py ROLE [options]``; the cluster secret comes from
``ALIGHT_CLUSTER_SECRET``. Every role prints ``address <addr>`` (when it binds) and
``ready``; a measuring role then prints one JSON line (its result) and exits. All
times are ``time.monotonic()`` (CLOCK_MONOTONIC: comparable between processes).

- ``sink --name N``: node B. Registers ``counter`` (counts every message; on
  ``("done", pid)`` sends back ``("count", n)`` and starts again: messages between two
  nodes arrive in order, so the count covers everything sent before ``done``) and
  ``echo`` (sends ``("pong", x)`` back for ``("ping", pid, x)``). With ``--pubsub``
  and a cluster PubSub adapter available, ``--subscribers`` processes subscribe to
  `TOPIC` in a `PubSub` named `PUBSUB` and count what they receive; ``counter``
  answers ``done`` with the deliveries of the first subscriber. Runs until killed.
  With ``--presence``, a presence `Tracker` replicating through the cluster runs too,
  and ``presences`` answers ``("count", pid, topic)`` with ``("presences", n)``.
- ``driver --name N --seed ADDR --mode M --count K --size S``: node A. Joins B, then
  measures M (``send``, ``pubsub``, ``rtt``, ``presence``: tracks K presences on
  `TOPIC` and polls B until it lists all) and prints the result; ``watch`` prints
  ``up`` once B is up, then ``{"down_at": t}`` when B is declared down.
- ``zmq_sink`` / ``zmq_send --seed ADDR --mode M``: the raw pyzmq baseline, DEALER ->
  ROUTER, plain sync sockets, no CurveZMQ, one ZeroMQ message per message (ZeroMQ's
  own I/O thread batches the writes; nothing is pickled: the payload is bytes of the
  size of the pickled alight message).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import time
from typing import Any

import zmq

from alight.actors import Node, Supervisor, receive, register, self_pid, send, spawn
from alight.channels.message import Broadcast
from alight.cluster import Distribution, Nodedown, Nodeup, monitor_nodes, nodes

TOPIC = "bench:cluster"
PUBSUB = "bench.pubsub"
BURST = 1000
"""Messages sent between two yields to the loop (the links flush once per loop turn)."""
TIME_LIMIT = 60.0
"""Seconds any one measurement may take; the driver exits with an error after that."""
JOIN_TIMEOUT = 10.0


def message(size: int) -> Broadcast:
    """The message every send and broadcast carries: a channel `Broadcast`, ~``size`` bytes of body."""
    return Broadcast(TOPIC, "msg", {"body": "x" * size})


def wire_size(size: int) -> int:
    return len(pickle.dumps(message(size), protocol=pickle.HIGHEST_PROTOCOL))


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def cluster_pubsub(node: Node, dist: Distribution) -> Any:
    """A `PubSub` forwarding through the cluster adapter, or None when there is none yet."""
    try:
        from alight.channels.pubsub import PubSub
        from alight.cluster.pubsub import ClusterAdapter
    except ImportError:
        return None
    pubsub = PubSub(node, PUBSUB)
    ClusterAdapter(dist, pubsub)  # installs itself as pubsub.adapter
    return pubsub


async def cluster_tracker(dist: Distribution) -> Any:
    """The same-named presence tracker on every node, replicating through ``dist``."""
    from alight.channels.presence.tracker import Tracker, TrackerSettings
    from alight.cluster.presence import ClusterReplicator, cluster_settings

    tracker = Tracker("bench_presence", lambda diffs: None, cluster_settings(TrackerSettings()))
    tracker.replicator = ClusterReplicator(dist, tracker)
    specs = [tracker.replicator.child_spec(), tracker.child_spec()]
    await Supervisor.start_link(specs, strategy="one_for_one", name=None)
    return tracker


async def presences(tracker: Any) -> None:
    while True:
        _, reply_to, topic = await receive()
        send(reply_to, ("presences", len(tracker.list(topic))))


async def track_until_listed(tracker: Any, peer: str, count: int) -> dict[str, Any]:
    me = self_pid()
    deadline = time.monotonic() + TIME_LIMIT
    start = time.monotonic()
    for i in range(count):
        await tracker.track(me, TOPIC, f"user:{i}", {"i": i})
    tracked = time.monotonic() - start
    listed = 0
    while listed < count and time.monotonic() < deadline:
        send(("presences", peer), ("count", me, TOPIC))
        listed = (await receive(lambda m: type(m) is tuple and m[0] == "presences", timeout=TIME_LIMIT))[1]
        if listed < count:
            await asyncio.sleep(0.005)
    seconds = time.monotonic() - start
    return {"count": count, "listed": listed, "seconds": seconds, "tracking_seconds": tracked}


# -- node B ---------------------------------------------------------------------------


async def counter(first: list[int] | None) -> None:
    count = 0
    while True:
        msg = await receive()
        if type(msg) is tuple and msg[0] == "done":
            send(msg[1], ("count", first[0] if first is not None else count))
            count = 0
            if first is not None:
                first[0] = 0
        else:
            count += 1


async def echo() -> None:
    while True:
        msg = await receive()
        send(msg[1], ("pong", msg[2]))


async def subscriber(cell: list[int] | None) -> None:
    while True:
        await receive()
        if cell is not None:
            cell[0] += 1


async def sink(args: argparse.Namespace, node: Node) -> None:
    dist = Distribution(node)
    await dist.start()
    first: list[int] | None = None
    if args.pubsub:
        pubsub = cluster_pubsub(node, dist)
        if pubsub is not None:
            first = [0]
            register("bench_pubsub", spawn(pubsub.run))
            for i in range(args.subscribers):
                pubsub.subscribe(spawn(subscriber, first if i == 0 else None), TOPIC)
    if args.presence:
        register("presences", spawn(presences, await cluster_tracker(dist)))
    register("counter", spawn(counter, first))
    register("echo", spawn(echo))
    print(f"address {dist.address}", flush=True)
    print("ready", flush=True)
    await asyncio.Event().wait()


# -- node A ---------------------------------------------------------------------------


async def join(dist: Distribution) -> str:
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not nodes():
        if time.monotonic() > deadline:
            raise SystemExit(f"driver: no peer after {JOIN_TIMEOUT} s")
        await asyncio.sleep(0.01)
    return nodes()[0]


async def count_at(peer: str) -> int:
    send(("counter", peer), ("done", self_pid()))
    reply = await receive(lambda m: type(m) is tuple and m[0] == "count", timeout=TIME_LIMIT)
    return int(reply[1])


async def flood(peer: str, count: int, size: int, pubsub: Any) -> dict[str, Any]:
    msg = message(size)
    dest = ("counter", peer)
    deadline = time.monotonic() + TIME_LIMIT
    await count_at(peer)  # warm the link, reset the count
    start = time.monotonic()
    sent = 0
    while sent < count and time.monotonic() < deadline:
        for _ in range(min(BURST, count - sent)):
            if pubsub is None:
                send(dest, msg)
            else:
                pubsub.broadcast(TOPIC, msg)
        sent += min(BURST, count - sent)
        await asyncio.sleep(0)
    received = await count_at(peer)
    elapsed = time.monotonic() - start
    return {"sent": sent, "received": received, "seconds": elapsed, "per_s": received / elapsed}


async def rtt(peer: str, count: int) -> dict[str, Any]:
    me = self_pid()
    dest = ("echo", peer)
    times: list[float] = []
    deadline = time.monotonic() + TIME_LIMIT
    for i in range(count + count // 10):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        send(dest, ("ping", me, i))
        await receive(timeout=TIME_LIMIT)
        if i >= count // 10:  # the first tenth warms up
            times.append((time.perf_counter() - start) * 1000)
    return {"count": len(times), **percentiles(times)}


def percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50_ms": times[len(times) // 2],
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
        "max_ms": times[-1],
    }


async def watch(dist: Distribution) -> None:
    monitor_nodes(True)
    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        msg = await receive(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(msg, Nodeup):
            print("up", flush=True)
            break
    while True:
        msg = await receive(timeout=TIME_LIMIT)
        if isinstance(msg, Nodedown):
            emit(down_at=time.monotonic(), down_after=dist.down_after, heartbeat_interval=dist.heartbeat_interval)
            return


async def driver(args: argparse.Namespace, node: Node) -> None:
    dist = Distribution(node, seeds=[args.seed])
    await dist.start()
    print("ready", flush=True)
    if args.mode == "watch":
        await watch(dist)
        return
    peer = await join(dist)
    if args.mode == "rtt":
        emit(**await rtt(peer, args.count))
        return
    if args.mode == "presence":
        emit(**await track_until_listed(await cluster_tracker(dist), peer, args.count))
        return
    pubsub = None
    if args.mode == "pubsub":
        pubsub = cluster_pubsub(node, dist)
        if pubsub is None:
            raise SystemExit("driver: no cluster PubSub adapter")
        register("bench_pubsub", spawn(pubsub.run))
    emit(**await flood(peer, args.count, args.size, pubsub), wire_bytes=wire_size(args.size))


# -- raw pyzmq --------------------------------------------------------------------------


def zmq_sink() -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    print(f"address tcp://127.0.0.1:{port}", flush=True)
    print("ready", flush=True)
    count = 0
    while True:
        ident, data = sock.recv_multipart()
        if data == b"done":
            sock.send_multipart([ident, str(count).encode()])
            count = 0
        elif data[:1] == b"p":
            sock.send_multipart([ident, data])
        else:
            count += 1


def zmq_send(args: argparse.Namespace) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(args.seed)
    print("ready", flush=True)
    deadline = time.monotonic() + TIME_LIMIT
    if args.mode == "rtt":
        times: list[float] = []
        for i in range(args.count + args.count // 10):
            if time.monotonic() > deadline:
                break
            start = time.perf_counter()
            sock.send(b"p%d" % i)
            sock.recv()
            if i >= args.count // 10:
                times.append((time.perf_counter() - start) * 1000)
        emit(count=len(times), **percentiles(times))
        return
    payload = b"m" * wire_size(args.size)
    sock.send(b"done")  # the link is up and the count reset
    sock.recv()
    start = time.monotonic()
    sent = 0
    while sent < args.count and time.monotonic() < deadline:
        for _ in range(min(BURST, args.count - sent)):
            sock.send(payload)
        sent += min(BURST, args.count - sent)
    sock.send(b"done")
    received = int(sock.recv())
    elapsed = time.monotonic() - start
    emit(sent=sent, received=received, seconds=elapsed, per_s=received / elapsed, wire_bytes=len(payload))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("sink", "driver", "zmq_sink", "zmq_send"))
    parser.add_argument("--name", default="bench@127.0.0.1")
    parser.add_argument("--seed", default="")
    parser.add_argument("--mode", default="send", choices=("send", "pubsub", "rtt", "watch", "presence"))
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--pubsub", action="store_true")
    parser.add_argument("--presence", action="store_true")
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    if args.role == "zmq_sink":
        zmq_sink()
    elif args.role == "zmq_send":
        zmq_send(args)
    else:
        node = Node(args.name, watchdog_threshold=None)
        node.run(sink if args.role == "sink" else driver, args, node)


if __name__ == "__main__":
    main()
