"""A node SIGKILLed (or paused) and started again under its name: a new incarnation.

As with Erlang distribution, the new incarnation's first word ends the old one at once
(``noconnection`` to links and monitors, `Nodedown`) and it is up both ways as soon as
it reports ready: nothing sent from then on is lost, in either direction, between it and
any node, and no heartbeat timeout is waited for. The restarted node seeds on every
node up, as ``alight cluster start --restart`` does; several seeds of one node once
gave two links to one peer, which the peer took for a second restart (a lost direction
for ``down_after``, 3 s).

Nodes are OS processes (`testkit.apps.node_main`, `testkit.apps.app_node`), each in its own process group and
killed in teardown; every wait is bounded (`WAIT`) and on a message or an output line.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import signal
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from testkit.cluster import WAIT, AppNode, ChildNode, echo, run_tester, wait_for, wait_nodes, whereis_on

from alight.actors import NOCONNECTION, Down, Exit, ReceiveTimeout, link, monitor, receive, self_pid, send, trap_exit
from alight.client import Message, Socket
from alight.cluster.distribution import Distribution, Nodedown

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

MESSAGES = 50
"""Messages sent on each path right after the restart."""


async def _collect(expected: set[Any]) -> None:
    """Receive ``("echo", tag)`` replies until every tag of ``expected`` came; a tag
    missing after `WAIT` is a lost message."""
    missing = set(expected)
    deadline = time.monotonic() + WAIT
    while missing:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            reply = await receive(lambda m: isinstance(m, tuple) and m[0] == "echo", timeout=remaining)
        except ReceiveTimeout:
            break
        missing.discard(reply[1])
    paths = sorted({tag[0] for tag in missing})
    assert not missing, f"{len(missing)} of {len(expected)} messages lost, on paths {paths}"


def test_a_killed_node_restarted_under_its_name_talks_to_every_node_at_once(
    start: Callable[..., ChildNode],
) -> None:
    a = start("a")
    b = start("b", a.address)
    c = start("c", a.address, b.address)

    async def main(dist: Distribution) -> None:
        await wait_nodes(dist, {"a", "b", "c"})
        old_echo = await whereis_on("c", "echo")
        ref = monitor(old_echo)
        c.signal(signal.SIGKILL)
        down = await receive(Down, timeout=WAIT)
        assert (down.ref, down.reason) == (ref, NOCONNECTION)
        await receive(lambda m: m == Nodedown("c"), timeout=WAIT)

        # The launcher's way: the same name, every node up as a seed. It prints
        # "ready" once it has joined them: from here on nothing may be lost.
        await asyncio.to_thread(start, "c", a.address, b.address, dist.address)
        assert "c" in dist.nodes()
        me = self_pid()
        expected = set()
        for i in range(MESSAGES):
            tags = [("tester-c", i)]
            send(("echo", "c"), ("echo", me, tags[0]))  # tester -> c -> tester
            for survivor in ("a", "b"):
                to_c, from_c = (f"{survivor}-c", i), (f"c-{survivor}", i)
                # survivor -> c (its echo answers the tester) and c -> survivor.
                send(("relay", survivor), ("relay", ("echo", "c"), ("echo", me, to_c)))
                send(("relay", "c"), ("relay", ("echo", survivor), ("echo", me, from_c)))
                tags += [to_c, from_c]
            expected.update(tags)
        await _collect(expected)
        new_echo = await whereis_on("c", "echo")
        assert new_echo.creation != old_echo.creation
        assert dist.stats.nodedowns == 1  # the restart did not flap

    run_tester(main, a.address)


def test_a_new_incarnation_ends_the_old_one_at_once(start: Callable[..., ChildNode]) -> None:
    # The old b is paused, its connections open: only the new b's Hello can tell the
    # tester it is gone (its heartbeat timeout is a minute).
    a = start("a")
    b = start("b", a.address)

    async def main(dist: Distribution) -> None:
        await wait_nodes(dist, {"a", "b"})
        victim = await whereis_on("b", "victim")
        trap_exit(True)
        link(victim)
        ref = monitor(victim)
        await echo("b", "sync")  # the link and monitor are in place over there
        b.signal(signal.SIGSTOP)
        await asyncio.to_thread(start, "b", a.address, dist.address)
        down = await receive(Down, timeout=WAIT)
        assert (down.ref, down.pid, down.reason) == (ref, victim, NOCONNECTION)
        assert (await receive(Exit, timeout=WAIT)).reason == NOCONNECTION
        await receive(lambda m: m == Nodedown("b"), timeout=WAIT)
        assert dist.nodes() == ["a", "b"]
        assert await echo("b", "new life") == "new life"
        send(("relay", "a"), ("relay", ("echo", "b"), ("echo", self_pid(), "a-b")))
        assert await receive(lambda m: isinstance(m, tuple) and m[0] == "echo", timeout=WAIT) == ("echo", "a-b")
        send(victim, ("die", "late"))  # a pid of the old life: dropped
        assert (await whereis_on("b", "victim")).creation != victim.creation

    run_tester(main, a.address, down_after=60.0)


# -- broadcasts: the reference app (PubSub through `ClusterAdapter`) ----------------------


@pytest.fixture
def app_nodes() -> Iterator[list[AppNode]]:
    """Nodes a, b and c of the reference app (c seeds on a and b), connected; the list
    takes the restarted ones too, all killed in teardown."""
    nodes: list[AppNode] = []
    try:
        nodes.append(AppNode("a", []))
        nodes.append(AppNode("b", [nodes[0].address]))
        nodes.append(AppNode("c", [nodes[0].address, nodes[1].address]))
        wait_for("a, b and c connected", lambda: all(len(node.nodes()) == 2 for node in nodes))
        yield nodes
    finally:
        for node in nodes:
            node.kill()


def _presence_is(node: AppNode, topic: str, keys: list[str]) -> bool:
    return node.presence(topic) == keys


def _broadcast(node: AppNode, topic: str, n: int) -> None:
    body = json.dumps({"topic": topic, "event": "shout", "payload": {"n": n}}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=WAIT)
    try:
        conn.request("POST", "/api/broadcast", body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b'{"ok":true}')
    finally:
        conn.close()


@pytest.mark.parametrize("same_port", [False, True], ids=["new-port", "same-port"])
def test_broadcasts_cross_both_ways_right_after_a_restart(app_nodes: list[AppNode], same_port: bool) -> None:
    # same-port: the new c binds the old one's cluster address, where the others'
    # links to the old c may reconnect by themselves.
    a, b, c = app_nodes
    topic = "room:restart"
    c.track(topic, "old-c")
    wait_for("a sees c's presence", lambda: a.presence(topic) == ["old-c"])
    c.kill()  # SIGKILL
    if not same_port:
        wait_for("c down on a and b", lambda: a.nodes() == ["b"] and b.nodes() == ["a"])
    port = int(c.address.rsplit(":", 1)[1]) if same_port else 0
    restarted = AppNode("c", [a.address, b.address], port)  # ready: it has joined a and b
    app_nodes.append(restarted)

    async def clients() -> None:
        everything = sorted([n for n in range(MESSAGES)] + [1000 + n for n in range(MESSAGES)])
        got: dict[str, list[int]] = {"a": [], "b": [], "c": []}
        complete = asyncio.Event()

        def on_shout(name: str) -> Callable[[Message], None]:
            def callback(message: Message) -> None:
                got[name].append(message.payload["n"])
                if all(len(numbers) >= len(everything) for numbers in got.values()):
                    complete.set()

            return callback

        nodes = {"a": a, "b": b, "c": restarted}
        sockets = {name: Socket(f"ws://{node.host}/socket", params={"user_id": name}) for name, node in nodes.items()}
        try:
            for name, socket in sockets.items():
                await socket.connect()
                channel = socket.channel(topic)
                channel.on("shout", on_shout(name))
                await channel.join(timeout=WAIT)
            for n in range(MESSAGES):  # from the new c to the others, and from them to it
                await asyncio.to_thread(_broadcast, restarted, topic, n)
                await asyncio.to_thread(_broadcast, a if n % 2 else b, topic, 1000 + n)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(complete.wait(), WAIT)
            for name, numbers in got.items():
                assert sorted(numbers) == everything, (name, sorted(set(everything) - set(numbers)))
        finally:
            for socket in sockets.values():
                await socket.disconnect()

    asyncio.run(clients())
    # Presence: the old incarnation's entries leave, the new one's arrive.
    restarted.track(topic, "new-c")
    for node in (a, b, restarted):
        wait_for(f"{node.name} sees only the new c's presence", partial(_presence_is, node, topic, ["new-c"]))
