"""A cluster of three hosts: ``alight node`` in network namespaces of its own, as on machines.

Each node runs in a namespace with its own address on a bridge (`testkit.hosts`, made and
removed here; skipped with the reason where namespaces cannot be made), started as a user
starts one: ``alight node --name a --host <its address> --cluster-bind ...``. Node ``a``
and ``c`` bind their cluster port on every interface and advertise their address; ``b``
binds its own address. Clients (the official phoenix client, raw HTTP long-poll) reach
the nodes from outside their hosts, by those addresses. CurveZMQ stays on throughout
(the secret comes from the environment).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit import UNIT
from testkit.cluster import LEAVE_BOUND, check_cluster_js, wait_for
from testkit.hosts import CLUSTER_PORT, HTTP_PORT, HostNode, hosts

from alight.benchmarks._netns import Hosts

pytestmark = pytest.mark.slow  # namespaces and OS processes: not in the fast lane

TOPIC = "room:hosts"


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hosts, list[HostNode]]]:
    logs = tmp_path_factory.mktemp("hosts")
    with hosts(3) as net:
        seed = f"tcp://{net.address(0)}:{CLUSTER_PORT}"
        a = HostNode(net, 0, "a", logs, bind="0.0.0.0", advertise=net.address(0))
        b = HostNode(net, 1, "b", logs, seeds=(seed,))
        c = HostNode(net, 2, "c", logs, seeds=(seed,), bind="0.0.0.0", advertise=net.address(2))
        nodes = [a, b, c]
        try:
            for node in nodes:
                node.start()
            yield net, nodes
        finally:
            for node in nodes:
                if getattr(node, "proc", None) is not None:
                    node.kill()


def _others(nodes: list[HostNode], node: HostNode) -> list[str]:
    return sorted(n.name for n in nodes if n is not node)


def _sees_the_others(nodes: list[HostNode], node: HostNode) -> Callable[[], bool]:
    return lambda: node.nodes() == _others(nodes, node)


def _forgot(node: HostNode, name: str) -> Callable[[], bool]:
    return lambda: name not in node.request("GET", "/test/nodes")["known"]


def _lists(node: HostNode, topic: str, keys: list[str]) -> Callable[[], bool]:
    return lambda: node.presence(topic) == keys


def test_nodes_are_named_after_their_hosts_and_advertise_them(three: tuple[Hosts, list[HostNode]]) -> None:
    net, nodes = three
    a, b, _c = nodes
    for index, node in enumerate(nodes):
        assert node.name == f"{node.base_name}@{net.address(index)}"
        assert node.address == f"tcp://{net.address(index)}:{CLUSTER_PORT}"
    for node in nodes:
        wait_for(f"{node.name} to see the others", _sees_the_others(nodes, node))
        answer = node.request("GET", "/test/nodes")
        assert answer["name"] == node.name
        assert answer["address"] == node.address
        assert answer["unreachable"] == 0
    assert f"cluster port bound on tcp://0.0.0.0:{CLUSTER_PORT}, advertised as {a.address}" in a.log()
    assert f"cluster port bound on {b.address}, advertised as {b.address}" in b.log()


def _refused(net: Hosts, index: int, host: str, port: int) -> bool:
    """Whether a TCP connect from inside host ``index`` to ``host:port`` is refused."""
    probe = (
        "import socket,sys\n"
        f"s=socket.socket(); s.settimeout({2 * UNIT})\n"
        f"sys.exit(0 if s.connect_ex(({host!r},{port})) else 1)\n"
    )
    result = subprocess.run([*net.prefix(index), sys.executable, "-c", probe], timeout=10 * UNIT, check=False)
    return result.returncode == 0


def test_ports_are_bound_where_they_were_told(three: tuple[Hosts, list[HostNode]]) -> None:
    net, (_a, b, _c) = three
    # b: HTTP and cluster on its address only, so not on its own loopback.
    assert _refused(net, 1, "127.0.0.1", HTTP_PORT)
    assert _refused(net, 1, "127.0.0.1", CLUSTER_PORT)
    assert not _refused(net, 1, b.ip, CLUSTER_PORT)
    # a: the cluster port on every interface (its loopback too), HTTP on its address only.
    assert not _refused(net, 0, "127.0.0.1", CLUSTER_PORT)
    assert _refused(net, 0, "127.0.0.1", HTTP_PORT)


def test_phoenix_client_across_hosts(three: tuple[Hosts, list[HostNode]]) -> None:
    _net, (a, b, c) = three
    received_before = {node.name: node.request("GET", "/test/stats")["received"] for node in (a, b, c)}
    check_cluster_js(a, c)
    # The three broadcasts made on a (shout, news, disconnect) reached each other host once.
    for node in (b, c):
        assert node.request("GET", "/test/stats")["received"] - received_before[node.name] == 3


def _longpoll(node: HostNode, method: str, token: str, lines: list[list[Any]] | None = None) -> Any:
    path = f"/socket/longpoll?vsn=2.0.0&user_id=lp&token={token}"
    if method == "GET":
        return node.request("GET", path)
    body = "\n".join(json.dumps(line) for line in lines or []).encode()
    return node.request("POST", path, body, {"content-type": "application/x-ndjson"})


def test_longpoll_session_served_by_every_host(three: tuple[Hosts, list[HostNode]]) -> None:
    _net, (a, b, c) = three
    created = a.request("GET", "/socket/longpoll?vsn=2.0.0&user_id=lp")
    assert created["status"] == 410
    token = created["token"]
    # The session lives on a; b and c reach it through cluster PubSub.
    assert _longpoll(b, "POST", token, [["1", "1", "room:lp", "phx_join", {"device": "lp"}]])["status"] == 200
    assert _longpoll(c, "POST", token, [["1", "2", "room:lp", "ping", {"x": 2}]])["status"] == 200
    replies: dict[str, Any] = {}
    for node in (c, b, a, c, b, a):
        if "1" in replies and "2" in replies:
            break
        got = _longpoll(node, "GET", token)
        assert got["status"] in (200, 204), got
        for text in got["messages"]:
            _join_ref, ref, _topic, event, payload = json.loads(text)
            if event == "phx_reply":
                replies[ref] = payload
    assert replies["1"]["status"] == "ok"
    assert replies["2"] == {"status": "ok", "response": {"x": 2}}
    for node in (b, c):
        wait_for(f"the long-poll user in {node.name}'s presence", _lists(node, "room:lp", ["lp"]))


def test_a_host_killed_and_restarted(three: tuple[Hosts, list[HostNode]]) -> None:
    net, nodes = three
    a, b, c = nodes
    a.track(TOPIC, "on_a")
    b.track(TOPIC, "on_b")
    for node in nodes:
        wait_for(f"both presences on {node.name}", _lists(node, TOPIC, ["on_a", "on_b"]))
    b.kill()  # SIGKILL
    for node in (a, c):
        left = wait_for(f"on_b leaving {node.name}", _lists(node, TOPIC, ["on_a"]))
        assert left < LEAVE_BOUND
        wait_for(f"b down on {node.name}", _sees_the_others([a, c], node))
    # The same node on the same host again: a new incarnation, rejoining through its seed.
    again = HostNode(net, 1, "b", b.log_path.parent, seeds=b.seeds).start()
    nodes[1] = again
    for node in nodes:
        wait_for(f"{node.name} to see the others again", _sees_the_others(nodes, node))
    again.track(TOPIC, "on_b_again")
    for node in nodes:
        wait_for(f"the presences converged on {node.name}", _lists(node, TOPIC, ["on_a", "on_b_again"]))


def test_a_peer_advertising_an_address_nobody_has(three: tuple[Hosts, list[HostNode]], tmp_path: Path) -> None:
    net, (a, _b, _c) = three
    nowhere = f"{net.subnet}.99"
    lost = HostNode(
        net,
        2,
        "lost",
        tmp_path,
        seeds=(a.address,),
        bind="0.0.0.0",
        advertise=nowhere,
        http_port=HTTP_PORT + 1,
        cluster_port=CLUSTER_PORT + 1,
    )
    try:
        lost.start()  # ready after its join timeout, saying what it still waits for
        assert lost.name == f"lost@{nowhere}"
        assert f"{a.address} (connected, but no answer: it may not reach this node at tcp://{nowhere}:" in lost.log()
        wait_for("a to count the unreachable peer", lambda: a.request("GET", "/test/nodes")["unreachable"] >= 1)
        assert (
            f"node lost@{nowhere} reached this node, but this node's link to the address it advertises, "
            f"tcp://{nowhere}:{CLUSTER_PORT + 1}, has not connected" in a.log()
        )
    finally:
        lost.kill()


def test_nodes_discovered_through_dns_join_and_leave(three: tuple[Hosts, list[HostNode]], tmp_path: Path) -> None:
    """``--discover dns:NAME``: the A records of NAME (each host's /etc/hosts, which the
    test rewrites, as a headless service's records change) are the cluster; a second
    cluster beside the first one, on other ports."""
    net, _nodes = three
    name, port = "alight-peers.test", CLUSTER_PORT + 10

    def records(*indexes: int) -> None:
        net.write_hosts([f"{net.address(i)} {name}" for i in indexes])

    def discovering(index: int) -> HostNode:
        return HostNode(
            net,
            index,
            f"d{index}",
            tmp_path,
            http_port=HTTP_PORT + 10,
            cluster_port=port,
            extra=("--discover", f"dns:{name}", "--discover-interval", str(0.3 * UNIT)),
        )

    records(0, 1)
    d0, d1, d2 = (discovering(i) for i in range(3))
    started = [d0.start(), d1.start()]
    try:
        for node in started:
            wait_for(f"{node.name} to discover the other", _sees_the_others(started, node))
        # A third host appears in the records: it joins, and is joined.
        records(0, 1, 2)
        started.append(d2.start())
        for node in started:
            wait_for(f"{node.name} to see all three", _sees_the_others(started, node))
        # d1 leaves the records and dies: down, then forgotten (not retried for ever).
        records(0, 2)
        d1.kill()
        started.remove(d1)
        for node in started:
            wait_for(f"{node.name} to forget d1", _forgot(node, d1.name))
            assert node.nodes() == _others(started, node)
        # DNS that answers nothing: said, counted, and nobody is dropped for it.
        records()
        wait_for("a failed lookup counted", lambda: d0.request("GET", "/test/nodes")["discovery_failures"] >= 2)
        assert f"discovery dns:{name}:{port}: looking up {name} failed" in d0.log()
        assert d0.nodes() == [d2.name]
        assert d0.log().count("looking up") == 1  # once per outage, not once per lookup
        records(0, 2)
        wait_for(
            "discovery answering again", lambda: f"discovery dns:{name}:{port}: tcp://" in d0.log().split("failed")[-1]
        )
        assert d0.nodes() == [d2.name]
    finally:
        for node in (d0, d1, d2):
            if getattr(node, "proc", None) is not None:
                node.kill()
