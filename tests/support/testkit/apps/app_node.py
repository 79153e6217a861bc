"""A clustered reference-app node for tests: ``python -m testkit.apps.app_node NAME CLUSTER_PORT [SEEDS...]``.

Runs `examples.reference.app` (presence on) on a node with a `Distribution` (secret from
``ALIGHT_CLUSTER_SECRET``; ``CLUSTER_PORT`` 0 picks one), HTTP on a free port of
127.0.0.1, and prints ``http <port>``, ``address <cluster address>`` then ``ready``
(once its `Distribution` has joined its seeds).
Runs until SIGTERM (orderly stop: the endpoint drains) or SIGKILL. ``ALIGHT_TEST_DRAIN``
(``BATCH_SIZE,BATCH_INTERVAL``) sets the endpoint's `Drainer`.

``alight node --app testkit.apps.app_node:app`` serves the same app (with these routes)
the way a user runs a node.

Test-only routes, for assertions from Python:

- ``GET /test/presence?topic=T``: ``{"keys": [...]}``, the sorted presence keys of T;
- ``POST /test/track?topic=T&key=K``: a process that stays tracked under K on T;
- ``GET /test/nodes``: ``{"nodes": [...], "known", "name", "address", "unreachable",
  "discovery_failures"}``, the other nodes up, every node known with its state, this
  node's name and advertised address, peers it could not reach, failed lookups;
- ``GET /test/stats``: the cluster PubSub adapter's counters.
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
from alight.cluster.distribution import Distribution, distribution_of
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
    assert dist is not None
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


if drain := os.environ.get("ALIGHT_TEST_DRAIN"):  # "BATCH_SIZE,BATCH_INTERVAL"
    size, interval = drain.split(",")
    app.drainer = Drainer(batch_size=int(size), batch_interval=float(interval))

app.route("GET", "/test/presence", presence_keys)
app.route("POST", "/test/track", track)
app.route("GET", "/test/nodes", nodes)
app.route("GET", "/test/stats", stats)


async def main(name: str, cluster_port: int, seeds: list[str]) -> None:
    node = Node(name, watchdog_threshold=None)
    await node.start()
    dist = Distribution(node, seeds=seeds, port=cluster_port)
    await dist.start()
    await node.execute(start_child, node.root, app.child_spec(port=0))
    assert app._listener is not None
    port = await node.execute(listener_port, app._listener)
    await dist.joined()
    print(f"http {port}", flush=True)
    print(f"address {dist.address}", flush=True)
    print("ready", flush=True)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await node.stop()  # presence shards announce a graceful permdown
    await dist.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
