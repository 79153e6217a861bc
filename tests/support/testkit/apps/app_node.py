"""A clustered reference-app node for tests: ``python -m testkit.apps.app_node NAME CLUSTER_PORT [SEEDS...]``.

Runs `examples.reference.app` (presence on) on a node with a `Distribution` (secret from
``ALIGHT_CLUSTER_SECRET``; ``CLUSTER_PORT`` 0 picks one), HTTP on a free port of
127.0.0.1, and prints ``http <port>``, ``address <cluster address>`` then ``ready``
(once its `Distribution` has joined its seeds).
Runs until SIGTERM (orderly stop: the endpoint drains) or SIGKILL. ``ALIGHT_TEST_DRAIN``
(``BATCH_SIZE,BATCH_INTERVAL``) sets the endpoint's `Drainer`. With
``ALIGHT_TEST_PUBSUB=redis://HOST:PORT`` the node has no `Distribution`: the endpoint
shares only that Redis with the others (`alight.cluster.redis.RedisPubSub`), the seeds
are ignored and the address printed is ``-``.

``alight node --app testkit.apps.app_node:app`` serves the same app (with these routes)
the way a user runs a node.

Test-only routes, for assertions from Python:

- ``GET /test/presence?topic=T``: ``{"keys": [...]}``, the sorted presence keys of T;
- ``POST /test/track?topic=T&key=K``: a process that stays tracked under K on T;
- ``GET /test/nodes``: ``{"nodes": [...], "known", "name", "address", "unreachable",
  "discovery_failures"}``, the other nodes up, every node known with its state, this
  node's name and advertised address, peers it could not reach, failed lookups;
- ``GET /test/stats``: the cluster PubSub adapter's counters;
- ``POST /test/subscribe?topic=T``: a process subscribed to T that records what it gets;
  ``GET /test/received?topic=T``: what it got, in order (`testkit.pubsub_conformance`);
- ``POST /test/broadcast?topic=T&kind=K&n=N``: N broadcasts of kind K made here
  (``direct=NODE`` for `direct_broadcast`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from typing import Any
from urllib.parse import parse_qs

import orjson

from alight.actors import Node, current_node, receive, spawn
from alight.actors.supervisor import start_child
from alight.channels import Drainer
from alight.channels.message import Broadcast
from alight.cluster.distribution import Distribution, distribution_of
from alight.cluster.redis import RedisPubSub
from alight.transports.http import HttpRequest, HttpResponse
from alight.transports.listener import listener_port
from examples.reference import app


def _json(data: Any) -> HttpResponse:
    return HttpResponse(200, (("content-type", "application/json"),), orjson.dumps(data))


def _query(request: HttpRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.query_string).items()}


async def presence_keys(request: HttpRequest) -> HttpResponse:
    assert app.presence is not None
    topic = _query(request)["topic"]
    return _json({"keys": sorted({key for key, _meta in app.presence.tracker.list(topic)})})


async def track(request: HttpRequest) -> HttpResponse:
    assert app.presence is not None
    query = _query(request)

    async def holder() -> None:
        await receive(lambda m: m == "never")

    pid = spawn(holder)
    await app.presence.track(pid, query["topic"], query["key"], {"device": "test"})
    return _json({"ok": True})


async def nodes(request: HttpRequest) -> HttpResponse:
    dist = distribution_of(current_node())
    if dist is None:  # on Redis: the nodes heard from
        adapter: Any = app.pubsub.adapter
        return _json({"nodes": sorted(adapter.stats.by_node), "name": current_node().name, "address": "-"})
    stats = dist.stats
    return _json(
        {
            "nodes": dist.nodes(),
            "known": dist.peer_states(),
            "name": current_node().name,
            "address": dist.address,
            "unreachable": stats.unreachable,
            "discovery_failures": stats.discovery_failures,
        }
    )


async def stats(request: HttpRequest) -> HttpResponse:
    adapter: Any = app.pubsub.adapter
    return _json(dataclasses.asdict(adapter.stats))


_RECEIVED: dict[str, list[Any]] = {}


async def subscribe(request: HttpRequest) -> HttpResponse:
    topic = _query(request)["topic"]
    got = _RECEIVED.setdefault(topic, [])

    async def recorder() -> None:
        while True:
            got.append(await receive())

    pid = spawn(recorder)
    app.pubsub.subscribe(pid, topic)
    return _json({"ok": True})


async def received(request: HttpRequest) -> HttpResponse:
    got = _RECEIVED.get(_query(request)["topic"], [])
    return _json({"messages": [_plain(message) for message in got]})


def _plain(message: Any) -> Any:
    """A received message as JSON: a `Broadcast` as ``{"broadcast": [event, payload]}``,
    tuples tagged so that the test sees they stayed tuples."""
    if isinstance(message, Broadcast):
        return {"broadcast": [message.event, _plain(message.payload)]}
    if isinstance(message, tuple):
        return {"tuple": [_plain(item) for item in message]}
    if isinstance(message, list):
        return [_plain(item) for item in message]
    if isinstance(message, dict):
        return {str(key): _plain(value) for key, value in message.items()}
    if isinstance(message, bytes):
        return {"bytes": message.hex()}
    return message


async def broadcast(request: HttpRequest) -> HttpResponse:
    query = _query(request)
    topic, kind, count = query["topic"], query.get("kind", "broadcast"), int(query.get("n", "1"))
    for n in range(count):
        message: Any
        if kind == "broadcast":
            message = Broadcast(topic, "tick", {"n": n, "from": current_node().name})
        elif kind == "binary":
            message = Broadcast(topic, "blob", b"\x00\xff" + n.to_bytes(4, "big"))
        else:  # "term": a plain message with a tuple, bytes and a nested dict
            message = ("term", n, b"\x01", {"nested": [1, 2.5, None, True]})
        if "direct" in query:
            app.pubsub.direct_broadcast(query["direct"], topic, message)
        else:
            app.pubsub.broadcast(topic, message)
    return _json({"ok": True})


if drain := os.environ.get("ALIGHT_TEST_DRAIN"):  # "BATCH_SIZE,BATCH_INTERVAL"
    size, interval = drain.split(",")
    app.drainer = Drainer(batch_size=int(size), batch_interval=float(interval))

app.route("GET", "/test/presence", presence_keys)
app.route("POST", "/test/track", track)
app.route("GET", "/test/nodes", nodes)
app.route("GET", "/test/stats", stats)
app.route("POST", "/test/subscribe", subscribe)
app.route("GET", "/test/received", received)
app.route("POST", "/test/broadcast", broadcast)

REDIS_URL = os.environ.get("ALIGHT_TEST_PUBSUB")
if REDIS_URL:
    app.extend(RedisPubSub(REDIS_URL))


async def main(name: str, cluster_port: int, seeds: list[str]) -> None:
    node = Node(name, watchdog_threshold=None)
    await node.start()
    dist = None if REDIS_URL else Distribution(node, seeds=seeds, port=cluster_port)
    if dist is not None:
        await dist.start()
    await node.execute(start_child, node.root, app.child_spec(port=0))
    assert app._listener is not None
    port = await node.execute(listener_port, app._listener)
    if dist is not None:
        await dist.joined()
    print(f"http {port}", flush=True)
    print(f"address {dist.address if dist is not None else '-'}", flush=True)
    print("ready", flush=True)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await node.stop()  # presence shards announce a graceful permdown
    if dist is not None:
        await dist.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
