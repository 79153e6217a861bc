"""Cluster layer: real OS-process nodes on 127.0.0.1 linked by `Distribution`.

Each test runs a node in this process (``tester``) and one to three nodes as child
processes (`_node_main`), each in its own process group, killed in teardown. Every
wait is bounded by a multiple of `UNIT`; waits are on events (messages, stdout lines).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alight.actors import NOCONNECTION, Down, Exit, Node, Pid, link, monitor, receive, self_pid, send, trap_exit
from alight.cluster.distribution import Distribution, Nodedown, Nodeup, monitor_nodes, spawn_on

from ..conftest import UNIT

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-cluster-secret-0123456789abcdef"
WAIT = 10 * UNIT


class ChildNode:
    def __init__(self, name: str, seeds: list[str]) -> None:
        env = {**os.environ, "ALIGHT_CLUSTER_SECRET": SECRET}
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster._node_main", name, *seeds],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
        )
        self.address = ""
        deadline = time.monotonic() + WAIT
        selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        buffer = b""
        while b"ready\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError(f"node {name} did not start")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"node {name} exited with {self.proc.poll()}")
            buffer += chunk
        selector.close()
        for line in buffer.decode().splitlines():
            if line.startswith("address "):
                self.address = line.split()[1]

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
        self.proc.wait(timeout=WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def start() -> Iterator[Callable[..., ChildNode]]:
    children: list[ChildNode] = []

    def starter(name: str, *seeds: str) -> ChildNode:
        child = ChildNode(name, list(seeds))
        children.append(child)
        return child

    yield starter
    for child in children:
        if child.proc.poll() is None:
            child.signal(signal.SIGCONT)  # a stopped process group must resume to die cleanly
        child.kill()


def run_tester(main: Callable[[Distribution], Awaitable[Any]], *seeds: str, **options: Any) -> Any:
    node = Node("tester", watchdog_threshold=None)

    async def body() -> Any:
        dist = Distribution(node, seeds=seeds, secret=SECRET, **options)
        await dist.start()
        try:
            return await node.execute(main, dist)
        finally:
            await dist.stop()

    return node.run(body)


async def wait_nodes(dist: Distribution, names: set[str]) -> None:
    monitor_nodes()
    while not names <= set(dist.nodes()):
        await receive(Nodeup, timeout=WAIT)


async def echo(node: str, payload: Any) -> Any:
    send(("echo", node), ("echo", self_pid(), payload))
    reply = await receive(lambda m: isinstance(m, tuple) and m[0] == "echo", timeout=WAIT)
    return reply[1]


async def whereis_on(node: str, name: str) -> Pid:
    send(("echo", node), ("whereis", self_pid(), name))
    reply = await receive(lambda m: isinstance(m, tuple) and m[0] == "whereis", timeout=WAIT)
    pid: Pid = reply[1]
    return pid


def test_remote_send_and_reply_to_a_registered_name(start: Callable[..., ChildNode]) -> None:
    a = start("a")

    async def main(dist: Distribution) -> None:
        await wait_nodes(dist, {"a"})
        assert await echo("a", {"hello": [1, 2]}) == {"hello": [1, 2]}
        pid = await whereis_on("a", "echo")
        assert pid.node == "a"
        send(pid, ("echo", self_pid(), "by pid"))
        assert await receive(timeout=WAIT) == ("echo", "by pid")

    run_tester(main, a.address)


def test_per_pair_order_of_10000_messages(start: Callable[..., ChildNode]) -> None:
    a = start("a")

    async def main(dist: Distribution) -> None:
        await wait_nodes(dist, {"a"})
        pid = await whereis_on("a", "echo")
        me = self_pid()
        for i in range(10_000):
            send(pid, ("echo", me, i))
        got = [(await receive(timeout=WAIT))[1] for _ in range(10_000)]
        assert got == list(range(10_000))
        assert dist.stats.links.dropped == 0

    run_tester(main, a.address)


def test_remote_link_and_monitor(start: Callable[..., ChildNode]) -> None:
    a = start("a")

    async def main(dist: Distribution) -> None:
        await wait_nodes(dist, {"a"})
        victim = await whereis_on("a", "victim")
        trap_exit(True)
        link(victim)
        ref = monitor(victim)
        send(victim, ("die", "boom"))
        down = await receive(Down, timeout=WAIT)
        assert (down.ref, down.pid, down.reason) == (ref, victim, "boom")
        exit_ = await receive(Exit, timeout=WAIT)
        assert (exit_.pid, exit_.reason) == (victim, "boom")
        # Monitoring a dead remote pid: Down(noproc) at once from the other node.
        ref2 = monitor(victim)
        assert (await receive(Down, timeout=WAIT)).ref == ref2

    run_tester(main, a.address)


def test_sigkill_gives_noconnection_at_once(start: Callable[..., ChildNode]) -> None:
    # The kernel closes a killed node's sockets: the lost connection declares it down,
    # well before heartbeat silence would (3 s).
    a = start("a")

    async def main(dist: Distribution) -> None:
        await wait_nodes(dist, {"a"})
        victim = await whereis_on("a", "victim")
        trap_exit(True)
        link(victim)
        ref = monitor(victim)
        await echo("a", "sync")  # the link and monitor are in place over there
        t0 = dist.node.loop.time()
        a.signal(signal.SIGKILL)
        down = await receive(Down, timeout=WAIT)
        assert (down.ref, down.reason) == (ref, NOCONNECTION)
        elapsed = dist.node.loop.time() - t0
        assert (await receive(Exit, timeout=WAIT)).reason == NOCONNECTION
        assert elapsed < 1.5, f"declared down after {elapsed:.2f}s"
        assert "a" not in dist.nodes()
        assert dist.stats.nodedowns == 1

    run_tester(main, a.address)


def test_third_node_learns_the_others_and_sigstop_rejoins(start: Callable[..., ChildNode]) -> None:
    a = start("a")
    b = start("b", a.address)

    async def main(dist: Distribution) -> None:
        await wait_nodes(dist, {"a", "b"})  # joined through b only: learned a from b
        assert await echo("a", 1) == 1
        assert await echo("b", 2) == 2
        b.signal(signal.SIGSTOP)
        await receive(lambda m: m == Nodedown("b"), timeout=WAIT)
        b.signal(signal.SIGCONT)
        await receive(lambda m: m == Nodeup("b"), timeout=WAIT)
        assert await echo("b", 3) == 3

    run_tester(main, b.address, down_after=1.5)


def test_spawn_on_another_node(start: Callable[..., ChildNode]) -> None:
    a = start("a")

    async def main(dist: Distribution) -> None:
        await wait_nodes(dist, {"a"})
        me = self_pid()

        async def remote(reply_to: Pid, n: int) -> None:
            from alight.actors import current_node, send

            send(reply_to, ("spawned", current_node().name, n * 2))

        pid = await spawn_on("a", remote, me, 21)
        assert pid.node == "a"
        assert await receive(timeout=WAIT) == ("spawned", "a", 42)

    run_tester(main, a.address)
