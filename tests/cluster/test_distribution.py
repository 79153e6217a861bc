"""Cluster layer: real OS-process nodes on 127.0.0.1 linked by `Distribution`.

Each test runs a node in this process (``tester``) and one to three nodes as child
processes (`testkit.apps.node_main`), each in its own process group, killed in teardown. Every
wait is bounded by a multiple of `UNIT`; waits are on events (messages, stdout lines).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from testkit.cluster import WAIT, ChildNode, echo, run_tester, wait_nodes, whereis_on

from alight.actors import NOCONNECTION, Down, Exit, Pid, link, monitor, receive, self_pid, send, trap_exit
from alight.cluster.distribution import Distribution, Nodedown, Nodeup, spawn_on

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane


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
