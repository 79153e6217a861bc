"""A cluster node for tests: ``python -m testkit.apps.node_main NAME [SEEDS...]``.

Starts a `Node` with a `Distribution` (secret from ``ALIGHT_CLUSTER_SECRET``), registers
``echo`` (answers ``("echo", from_pid, payload)`` with ``("echo", payload)``, and
``("whereis", from_pid, name)`` with ``("whereis", pid)``), ``relay`` (sends
``payload`` to ``to``, a pid or a ``(name, node)`` pair, on ``("relay", to, payload)``:
a message between two other nodes, on the tester's behalf) and ``victim`` (exits with
``reason`` on ``("die", reason)``), prints ``address <addr>`` then ``ready`` (once its
`Distribution` has joined its seeds), and runs until SIGTERM or SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from alight.actors import ExitProcess, Node, receive, register, send, spawn, whereis
from alight.cluster.distribution import Distribution


async def echo() -> None:
    while True:
        message = await receive()
        match message:
            case ("echo", sender, payload):
                send(sender, ("echo", payload))
            case ("whereis", sender, name):
                send(sender, ("whereis", whereis(name)))


async def relay() -> None:
    while True:
        match await receive():
            case ("relay", to, payload):
                send(to, payload)


async def victim() -> None:
    message: Any = await receive(lambda m: isinstance(m, tuple) and m[0] == "die")
    raise ExitProcess(message[1])


async def main(name: str, seeds: list[str]) -> None:
    node = Node(name, watchdog_threshold=None)
    await node.start()
    dist = Distribution(node, seeds=seeds)
    await dist.start()
    await dist.joined()
    await node.execute(_spawn_services)
    print(f"address {dist.address}", flush=True)
    print("ready", flush=True)
    await asyncio.Event().wait()


async def _spawn_services() -> None:
    register("echo", spawn(echo))
    register("relay", spawn(relay))
    register("victim", spawn(victim))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
