"""Cluster nodes as OS processes, and a tester node with its own Distribution."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from alight.actors import Node, Pid, receive, self_pid, send
from alight.cluster.distribution import Distribution, Nodeup, monitor_nodes
from testkit import UNIT
from testkit.processes import REPO, read_until_ready, run_node

SECRET = "test-cluster-secret-0123456789abcdef"


WAIT = 10 * UNIT
LEAVE_BOUND = 5.0 + 0.5 * UNIT
"""A dead or paused node's presences leave within 5 s of its last heartbeat (the cluster
timing, `CLUSTER_TRACKER_SETTINGS`); a test sees them go from when it sent the signal,
through HTTP polls, on a loaded 2-core machine: half a unit of slack for the timers'
lateness and the polls (5.002 s and 5.02 s were seen under load)."""


class ChildNode:
    def __init__(self, name: str, seeds: list[str]) -> None:
        env = {**os.environ, "ALIGHT_CLUSTER_SECRET": SECRET}
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "testkit.apps.node_main", name, *seeds],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
        )
        self.address = ""
        for line in read_until_ready(self.proc, name, WAIT):
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


POLL = 0.05


class HttpNode:
    """A node process serving `testkit.apps.app_node`'s routes at ``ip:http_port``: HTTP
    helpers, signals, kill. `AppNode` and `testkit.hosts.HostNode` start one."""

    name: str
    proc: subprocess.Popen[bytes]
    ip = "127.0.0.1"
    http_port = 0
    address = ""

    @property
    def host(self) -> str:
        return f"{self.ip}:{self.http_port}"

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
        """``method path`` on this node; the decoded JSON body."""
        conn = http.client.HTTPConnection(self.ip, self.http_port, timeout=15 * UNIT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            assert response.status == 200, (method, path, response.status, data)
            return json.loads(data)
        finally:
            conn.close()

    def presence(self, topic: str) -> list[str]:
        keys: list[str] = self.request("GET", f"/test/presence?topic={topic}")["keys"]
        return keys

    def track(self, topic: str, key: str) -> None:
        self.request("POST", f"/test/track?topic={topic}&key={key}")

    def nodes(self) -> list[str]:
        names: list[str] = self.request("GET", "/test/nodes")["nodes"]
        return names

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)  # a stopped process group must resume to die cleanly
            self.signal(signal.SIGKILL)
        self.proc.wait(timeout=WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class AppNode(HttpNode):
    """A `testkit.apps.app_node` child process on 127.0.0.1: ``http_port``, ``address``
    (``cluster_port`` 0: any free one)."""

    def __init__(self, name: str, seeds: list[str], cluster_port: int = 0, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "testkit.apps.app_node", name, str(cluster_port), *seeds],
            cwd=REPO,
            env={**os.environ, "ALIGHT_CLUSTER_SECRET": SECRET, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
        )
        for line in read_until_ready(self.proc, name, WAIT):
            if line.startswith("http "):
                self.http_port = int(line.split()[1])
            elif line.startswith("address "):
                self.address = line.split()[1]


@contextlib.contextmanager
def app_pair(
    env: dict[str, str] | None = None, env_b: dict[str, str] | None = None
) -> Iterator[tuple[AppNode, AppNode]]:
    """`AppNode` processes ``a`` and ``b``, connected, killed on the way out: by the mesh
    (b seeds a) or, with ``ALIGHT_TEST_PUBSUB`` in ``env``, through that Redis alone.
    ``env_b`` is added to b's environment (e.g. its drainer)."""
    nodes: list[AppNode] = []
    try:
        a = AppNode("a", [], env=env)
        nodes.append(a)
        seeds = [] if env and "ALIGHT_TEST_PUBSUB" in env else [a.address]
        b = AppNode("b", seeds, env={**(env or {}), **(env_b or {})})
        nodes.append(b)
        wait_for("a and b connected", lambda: a.nodes() == ["b"] and b.nodes() == ["a"])
        yield a, b
    finally:
        for node in nodes:
            node.kill()


def check_cluster_js(first: HttpNode, second: HttpNode) -> None:
    """Run ``tests/js/cluster.js`` (the official phoenix client: alice on ``first``, bob
    on ``second``) and check what it saw: a shout and an API broadcast made on ``first``
    reach ``second``, presence lists both ways and a leave, a ``disconnect`` closes only
    the socket it names."""
    run = run_node("cluster.js", first.host, second.host, timeout=35 * UNIT)
    errors = [line for line in run.lines if "error" in line]
    assert not errors, (errors, run.stderr)
    checks = run.by_check
    assert checks["presence_join"]["bob"] == ["alice", "bob"]
    assert checks["presence_join"]["alice"] == ["alice", "bob"]
    assert checks["shout"]["bob"] == [{"event": "shout", "payload": {"n": 1, "from": "alice"}}]
    assert checks["api_broadcast"]["status"] == 200
    assert checks["api_broadcast"]["bob"] == [{"event": "news", "payload": {"from": "api"}}]
    assert checks["presence_leave"]["bob"] == ["bob"]
    assert checks["disconnect"]["closes"] >= 1
    assert checks["disconnect"]["bob_closes"] == 0  # only carol's socket went
    assert "done" in checks


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = WAIT) -> float:
    """Poll ``predicate`` until it holds; the seconds it took. Fails after ``timeout``."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL)
    return time.monotonic() - t0
