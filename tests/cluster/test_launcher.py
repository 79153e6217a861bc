"""``alight cluster start`` and ``alight node``, run as a user runs them: the console
script in OS processes on 127.0.0.1.

Every process is started in a session of its own and its group is SIGKILLed in
teardown (the launcher's, and each node pid the status file ever listed). Waits are on
output lines, bounded by multiples of `UNIT`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testkit import UNIT
from testkit.launcher import APP, SECRET, WAIT, Child, alive, free_ports, read_status

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane


def _get(port: int, path: str = "/health") -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5 * UNIT) as response:
        status: int = response.status
        return status, response.read()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def starter(args: list[str], secret: str | None = SECRET) -> Child:
        child = Child(args, secret)
        children.append(child)
        return child

    yield starter
    pids: set[int] = set()
    for status_file in tmp_path.glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            pids |= {node["pid"] for node in read_status(status_file) if node["pid"]}
    for child in children:
        child.kill()
    for pid in pids:  # every node the launcher started is the leader of its group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _is_up(line: str) -> bool:
    return "nodes up; Ctrl-C or SIGTERM stops it" in line


def test_cluster_shares_a_port_restarts_a_killed_node_and_stops_on_sigterm(
    spawn: Callable[..., Child], tmp_path: Path
) -> None:
    port = free_ports()
    status_file = tmp_path / "status.json"
    args = ["cluster", "start", "--nodes", "2", "--app", APP, "--port", str(port)]
    launcher = spawn([*args, "--status-file", str(status_file), "--restart"], secret=None)
    launcher.wait_line(_is_up)

    nodes = read_status(status_file)
    assert [node["name"] for node in nodes] == ["node0@127.0.0.1", "node1@127.0.0.1"]
    assert {node["state"] for node in nodes} == {"up"}
    assert [node["http_port"] for node in nodes] == [port, port]
    pids = [node["pid"] for node in nodes]
    addresses = [node["cluster_address"] for node in nodes]
    assert len(set(pids)) == 2
    assert len(set(addresses)) == 2
    assert all(address.startswith("tcp://127.0.0.1:") for address in addresses)
    for _ in range(8):  # new connections each time; the kernel spreads them over both
        assert _get(port) == (200, b"ok")
    assert all(alive(pid) for pid in pids)
    # The secret was generated for this cluster and never put on a command line.
    for pid in pids:
        assert b"SECRET" not in Path(f"/proc/{pid}/cmdline").read_bytes().upper()

    os.kill(pids[1], signal.SIGKILL)
    # The launcher reads its nodes' ready lines and shows the table; it does not copy them.
    row = launcher.wait_line(lambda line: "│ node1@127.0.0.1" in line and "│ up" in line and str(pids[1]) not in line)
    new_pid = int(row.split("│")[2])
    assert new_pid != pids[1]
    assert not any("alight-node-ready" in line for line in launcher.lines)
    restarted = read_status(status_file)[1]
    assert (restarted["name"], restarted["pid"], restarted["state"]) == ("node1@127.0.0.1", new_pid, "up")
    assert read_status(status_file)[0]["pid"] == pids[0]
    assert _get(port) == (200, b"ok")

    launcher.proc.send_signal(signal.SIGTERM)
    assert launcher.proc.wait(timeout=WAIT) == 0
    launcher.wait_line(lambda line: line == "cluster stopped")
    assert not alive(pids[0])
    assert not alive(new_pid)
    assert {node["state"] for node in read_status(status_file)} == {"stopped"}


def test_port_per_node_gives_node_i_port_p_plus_i(spawn: Callable[..., Child], tmp_path: Path) -> None:
    port = free_ports(consecutive=2)
    status_file = tmp_path / "status.json"
    args = ["cluster", "start", "--nodes", "2", "--app", APP, "--port", str(port), "--port-per-node"]
    launcher = spawn([*args, "--status-file", str(status_file)])
    launcher.wait_line(_is_up)
    nodes = read_status(status_file)
    assert [node["http_port"] for node in nodes] == [port, port + 1]
    assert _get(port) == (200, b"ok")
    assert _get(port + 1) == (200, b"ok")
    launcher.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert launcher.proc.wait(timeout=WAIT) == 0
    assert not any(alive(node["pid"]) for node in nodes)


def test_node_without_a_secret_refuses_to_start(spawn: Callable[..., Child]) -> None:
    node = spawn(["node", "--name", "lone@127.0.0.1", "--app", APP, "--port", "0"], secret=None)
    assert node.proc.wait(timeout=WAIT) != 0
    message = node.wait_line(lambda line: "refusing to start node lone@127.0.0.1" in line)
    assert "ALIGHT_CLUSTER_SECRET" in message
    assert "--secret-file" in message


def test_node_with_a_secret_file_prints_its_addresses_and_stops_on_sigterm(
    spawn: Callable[..., Child], tmp_path: Path
) -> None:
    key_file = tmp_path / "cluster.key"
    key_file.write_text(SECRET + "\n")
    key_file.chmod(0o600)
    node = spawn(
        ["node", "--name", "one@127.0.0.1", "--app", APP, "--port", "0", "--secret-file", str(key_file)], secret=None
    )
    ready = node.wait_line(lambda line: line.startswith("alight-node-ready "))
    fields = dict(part.split("=", 1) for part in ready.split()[1:])
    assert fields["name"] == "one@127.0.0.1"
    assert int(fields["pid"]) == node.proc.pid
    assert fields["cluster_address"].startswith("tcp://127.0.0.1:")
    assert _get(int(fields["http_port"])) == (200, b"ok")
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(timeout=WAIT) == 0


def test_a_second_node_joins_through_its_seed(spawn: Callable[..., Child]) -> None:
    first = spawn(["node", "--name", "a@127.0.0.1", "--app", APP, "--port", "0"])
    seed = first.wait_line(lambda line: line.startswith("alight-node-ready ")).split("cluster_address=")[1]
    second = spawn(["node", "--name", "b@127.0.0.1", "--app", APP, "--port", "0", "--seeds", seed])
    second.wait_line(lambda line: line.startswith("alight-node-ready "))
    second.wait_line(lambda line: "node a@127.0.0.1 is up" in line)
    first.wait_line(lambda line: "node b@127.0.0.1 is up" in line)
