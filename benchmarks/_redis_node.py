"""One process of ``benchmarks/redis_pubsub.py``: an alight node on Redis, or raw redis-py.

``python benchmarks/_redis_node.py ROLE --url URL --count N [--size S]``; the cluster
secret comes from ``ALIGHT_CLUSTER_SECRET``. Every role prints ``ready`` once it is
subscribed (or connected), then one JSON line (its result) and exits. Every role runs
on uvloop, as nodes do. Times are
``time.monotonic()`` (comparable between processes).

- ``sink``: node ``b``: an endpoint with `RedisPubSub` and ``--subscribers`` processes
  subscribed to `TOPIC`; prints ``{"received", "last_at"}`` once the first has N.
- ``driver``: node ``a`` (started once ``b`` is ready): once connected, broadcasts N `Broadcast`\\ s of
  a ``--size``-byte body on `TOPIC` in bursts of `BURST` (waiting while more than
  `MAX_WAITING` wait for Redis, so that nothing is dropped); prints ``{"sent",
  "started_at", "frame_bytes", "dropped"}``.
- ``raw_sink`` / ``raw_send``: redis-py's asyncio client (hiredis parser) alone: the
  subscriber counts N messages on the channel (reading with no timeout, redis-py's
  fastest read); the sender PUBLISHes N payloads of
  ``--frame`` bytes (alight's frame size) pipelined `BURST` at a time, as the adapter does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import redis.asyncio as aioredis
import uvloop

from alight.actors import Node, receive, spawn
from alight.actors.supervisor import start_child
from alight.channels import Endpoint
from alight.channels.message import Broadcast
from alight.cluster.redis import RedisAdapter, RedisPubSub

TOPIC = "bench:redis"
CHANNEL = "bench:raw"
BURST = 512
MAX_WAITING = 4096
TIME_LIMIT = 60.0


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def message(size: int) -> Broadcast:
    return Broadcast(TOPIC, "msg", {"body": "x" * size})


async def _node(name: str, url: str) -> tuple[Node, Endpoint]:
    node = Node(name, watchdog_threshold=None)
    await node.start()
    app = Endpoint(name="bench", check_origin=False, drainer=None)
    app.extend(RedisPubSub(url))
    await node.execute(start_child, node.root, app.child_spec(port=None))
    return node, app


async def _until(predicate: Any, what: str, poll: float = 0.005) -> None:
    deadline = time.monotonic() + TIME_LIMIT
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(poll)


async def sink(url: str, count: int, subscribers: int) -> None:
    node, app = await _node("b", url)
    adapter = app.pubsub.adapter
    assert isinstance(adapter, RedisAdapter)
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    counted = [0]

    async def counter(first: bool) -> None:
        n = 0
        while n < count:
            await receive()
            n += 1
            if first:
                counted[0] = n
        if first:
            done.set_result(time.monotonic())

    async def start(first: bool) -> None:
        app.pubsub.subscribe(spawn(counter, first), TOPIC)

    for i in range(subscribers):
        await node.execute(start, i == 0)
    await _until(lambda: adapter.connected, "b connected")
    print("ready", flush=True)
    try:
        async with asyncio.timeout(TIME_LIMIT):
            last = await done
    except TimeoutError:
        raise SystemExit(f"sink: {counted[0]} of {count} received in {TIME_LIMIT} s; {adapter.stats}") from None
    emit(received=count, last_at=last, lost=adapter.stats.lost)


async def driver(url: str, count: int, size: int) -> None:
    node, app = await _node("a", url)
    adapter = app.pubsub.adapter
    assert isinstance(adapter, RedisAdapter)
    await _until(lambda: adapter.connected, "a connected")  # b was subscribed before a started
    print("ready", flush=True)
    msg = message(size)
    frame = len(adapter.codec.encode(("a", node.creation, 1, 0, TOPIC, msg))) + 44
    started = time.monotonic()
    sent = 0
    while sent < count:
        for _ in range(min(BURST, count - sent)):
            app.pubsub.broadcast(TOPIC, msg)
        sent += min(BURST, count - sent)
        await _until(lambda: adapter.waiting <= MAX_WAITING, "Redis keeping up", 0.0005)
        await asyncio.sleep(0)
    await _until(lambda: adapter.stats.published >= sent, "every broadcast published")
    emit(sent=sent, started_at=started, frame_bytes=frame, dropped=adapter.stats.dropped)


async def raw_sink(url: str, count: int) -> None:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    print("ready", flush=True)
    n = 0
    async with asyncio.timeout(TIME_LIMIT):
        while n < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None:
                n += 1
    emit(received=n, last_at=time.monotonic())
    await client.aclose()


async def raw_send(url: str, count: int, frame: int) -> None:
    client = aioredis.Redis.from_url(url)
    await client.ping()  # type: ignore[misc]  # redis-py stubs: sync or async
    print("ready", flush=True)
    payload = b"x" * frame
    started = time.monotonic()
    sent = 0
    while sent < count:
        pipe = client.pipeline(transaction=False)
        for _ in range(min(BURST, count - sent)):
            pipe.publish(CHANNEL, payload)
        await pipe.execute()
        sent += min(BURST, count - sent)
    emit(sent=sent, started_at=started)
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["sink", "driver", "raw_sink", "raw_send"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--frame", type=int, default=200)
    parser.add_argument("--subscribers", type=int, default=1)
    args = parser.parse_args()
    if args.role == "sink":
        coro = sink(args.url, args.count, args.subscribers)
    elif args.role == "driver":
        coro = driver(args.url, args.count, args.size)
    elif args.role == "raw_sink":
        coro = raw_sink(args.url, args.count)
    else:
        coro = raw_send(args.url, args.count, args.frame)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as a node runs
        runner.run(coro)


if __name__ == "__main__":
    main()
