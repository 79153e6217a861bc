"""A node serving a small app with the dashboard, for the dashboard's browser tests.

``python -m testkit.apps.dashboard_node NAME [--cluster-port P] [--seeds ADDR ...] [--load]``

Serves an endpoint with a `Dashboard` and presence on a free port of 127.0.0.1
next to a small supervision tree of its own::

    workers (one_for_one)
    ├── counter             a named GenServer
    └── jobs (one_for_one)
        ├── job.1, job.2    named GenServers

With ``--cluster-port`` the node joins a cluster (secret from ``ALIGHT_CLUSTER_SECRET``).
With ``--load`` a few processes give the dashboard something to show: room members
subscribed and tracked on a few topics, a broadcaster, a slow reader whose mailbox
grows, and one process that blocks the loop once (a watchdog report).

Prints ``http <port>``, (``address <cluster address>``,) then ``ready``; runs until SIGTERM.
``asgi_app`` is the same endpoint (without the extra tree) for uvicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import Any

from alight.actors import ChildSpec, GenServer, Node, Reply, Supervisor, receive, self_pid, spawn_link
from alight.actors.supervisor import start_child
from alight.channels import Channel, Endpoint, Ok, Socket
from alight.channels.message import Broadcast
from alight.dashboard import Dashboard
from alight.transports.http import HttpRequest, HttpResponse
from alight.transports.listener import listener_port


class Job(GenServer):
    async def init(self, n: int) -> None:
        self.n = n

    async def handle_call(self, request: Any, from_: Any) -> Reply:
        return Reply(self.n)


class RoomChannel(Channel):
    async def join(self, topic: str, payload: Any) -> Ok:
        return Ok()


class UserSocket(Socket):
    channels = {"room:*": RoomChannel}


app = Endpoint(check_origin=False, presence=True)
Dashboard(app)
app.socket("/socket", UserSocket)


async def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse(200, body=b"ok")


app.route("GET", "/health", health)
asgi_app = app.asgi()
"""The same endpoint for uvicorn (``uvicorn testkit.apps.dashboard_node:asgi_app``)."""


def workers() -> ChildSpec:
    jobs = Supervisor.child_spec([Job.child_spec(n, id=f"job.{n}", name=f"job.{n}") for n in (1, 2)], id="jobs")
    return Supervisor.child_spec([Job.child_spec(0, id="counter", name="counter"), jobs], id="workers")


# -- load, for a dashboard with something to show -----------------------------------------

ROOMS = {"room:lobby": ["ann", "bob", "cy", "dee", "eve"], "room:dev": ["ann", "fox", "gil"], "room:ops": ["hal"]}


async def member(topic: str, key: str) -> None:
    app.pubsub.subscribe(self_pid(), topic)
    assert app.presence is not None
    await app.presence.track(self_pid(), topic, key, {"device": "web"})
    while True:
        await receive()


async def slow_reader() -> None:
    app.pubsub.subscribe(self_pid(), "room:lobby")
    while True:
        await asyncio.sleep(0.5)
        await receive()


async def broadcaster() -> None:
    n = 0
    while True:
        n += 1
        for topic in ROOMS:
            app.pubsub.broadcast(topic, Broadcast(topic, "tick", {"n": n}))
        await asyncio.sleep(0.05)


async def blocker() -> None:
    await asyncio.sleep(1.0)
    time.sleep(0.25)  # noqa: ASYNC251 - holds the loop on purpose: the watchdog reports it
    await receive(lambda m: m == "never")


def load() -> ChildSpec:
    async def start() -> Any:
        children = [
            ChildSpec(id=("member", topic, key), start=_starter(member, topic, key))
            for topic, keys in ROOMS.items()
            for key in keys
        ]
        children += [
            ChildSpec(id="slow_reader", start=_starter(slow_reader)),
            ChildSpec(id="broadcaster", start=_starter(broadcaster)),
            ChildSpec(id="blocker", start=_starter(blocker)),
        ]
        return await Supervisor.start_link(children, strategy="one_for_one")

    return ChildSpec(id="load", start=start, type="supervisor")


def _starter(fn: Any, *args: Any) -> Any:
    async def start() -> Any:
        return spawn_link(fn, *args)

    return start


async def main(args: argparse.Namespace) -> None:
    node = Node(args.name)
    await node.start()
    dist = None
    if args.cluster_port is not None:
        from alight.cluster.distribution import Distribution

        dist = Distribution(node, seeds=args.seeds, port=args.cluster_port)
        await dist.start()
    await node.execute(start_child, node.root, app.child_spec(port=0))
    await node.execute(start_child, node.root, workers())
    if args.load:
        await node.execute(start_child, node.root, load())
    assert app._listener is not None
    port = await node.execute(listener_port, app._listener)
    print(f"http {port}", flush=True)
    if dist is not None:
        print(f"address {dist.address}", flush=True)
    print("ready", flush=True)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await node.stop()
    if dist is not None:
        await dist.stop()


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--cluster-port", type=int, default=None)
    parser.add_argument("--seeds", nargs="*", default=[])
    parser.add_argument("--load", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_parse()))
