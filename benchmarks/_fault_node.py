"""A node of the nemesis (`benchmarks/faults.py`): the reference app with presence on a
`Distribution`, HTTP and cluster ports on one address.

``python -m benchmarks._fault_node NAME HOST HTTP_PORT CLUSTER_PORT [SEEDS...]``
(``ALIGHT_CLUSTER_SECRET`` set); prints ``ready`` once its HTTP listener is up and it
has joined its seeds (or after a bounded wait when they are unreachable: a node that
restarts during a partition must still come up). Runs until SIGTERM or SIGKILL.

Routes for the checker:

- ``GET /test/presence?topic=T``: ``{"refs": {key: [phx_ref, ...]}}``, this node's
  tracker view of T;
- ``GET /test/counters``: what this node's cluster layer dropped (link drops, PubSub
  forwards that found no link), for the broadcast-loss accounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
from typing import Any
from urllib.parse import parse_qs

import orjson

from alight.actors import Node
from alight.actors.supervisor import start_child
from alight.cluster.distribution import Distribution
from alight.examples.reference import app
from alight.transports.http import HttpRequest, HttpResponse

JOIN_WAIT = 5.0
"""Seconds to wait for the seeds before saying ready anyway."""

_dist: Distribution | None = None


def _json(data: Any) -> HttpResponse:
    return HttpResponse(200, (("content-type", "application/json"),), orjson.dumps(data))


async def presence_refs(request: HttpRequest) -> HttpResponse:
    assert app.presence is not None
    topic = parse_qs(request.query_string)["topic"][0]
    refs: dict[str, list[str]] = {}
    for key, meta in app.presence.tracker.list(topic):
        refs.setdefault(key, []).append(meta["phx_ref"])
    return _json({"refs": refs})


async def counters(request: HttpRequest) -> HttpResponse:
    assert _dist is not None
    adapter: Any = app.pubsub.adapter
    return _json({"pubsub": dataclasses.asdict(adapter.stats), "link": dataclasses.asdict(_dist.stats.links)})


async def main(name: str, host: str, http_port: int, cluster_port: int, seeds: list[str]) -> None:
    global _dist
    app.route("GET", "/test/presence", presence_refs)
    app.route("GET", "/test/counters", counters)
    node = Node(name, watchdog_threshold=None)
    await node.start()
    dist = _dist = Distribution(node, seeds=seeds, host=host, port=cluster_port)
    await dist.start()
    await node.execute(start_child, node.root, app.child_spec(port=http_port, host=host))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(dist.joined(), JOIN_WAIT)
    print("ready", flush=True)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await node.stop()
    await dist.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]))
