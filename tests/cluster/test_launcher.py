"""``alight cluster start`` and ``alight node``, run as a user runs them: the console
script in OS processes on 127.0.0.1.

Every process is started in a session of its own and its group is SIGKILLed in
teardown (the launcher's, and each node pid the status file ever listed). Waits are on
output lines, bounded by multiples of `UNIT`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import UNIT

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-launcher-secret-0123456789abcdef"
WAIT = 15 * UNIT
APP = "examples.reference:app"


def _alight() -> list[str]:
    script = Path(sys.executable).with_name("alight")
    return [str(script)] if script.exists() else [sys.executable, "-m", "alight.cli"]


def _env(secret: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ALIGHT_CLUSTER_SECRET"}
    if secret is not None:
        env["ALIGHT_CLUSTER_SECRET"] = secret
    return env


def _free_port(consecutive: int = 1) -> int:
    """A port P such that P..P+consecutive-1 are free on 127.0.0.1 now.

    Chosen below the kernel's ephemeral range (32768+ by default), so that no outgoing
    connection of another test can take P+1 between this check and the node's bind."""
    for _ in range(200):
        port = random.randrange(20_000, 32_000 - consecutive)
        held = []
        try:
            for offset in range(consecutive):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError("no free ports")


def _get(port: int, path: str = "/health") -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5 * UNIT) as response:
        status: int = response.status
        return status, response.read()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Child:
    """An ``alight`` command in its own session, its output read line by line."""

    def __init__(self, args: list[str], secret: str | None) -> None:
        self.proc = subprocess.Popen(
            [*_alight(), *args],
            cwd=REPO,
            env=_env(secret),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._buffer = b""

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = WAIT) -> str:
        """The first line (new or already read) satisfying ``predicate``."""
        for line in self.lines:
            if predicate(line):
                return line
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            deadline = _now() + timeout
            while True:
                remaining = deadline - _now()
                if remaining <= 0 or not selector.select(remaining):
                    pytest.fail(f"no expected line in {timeout}s; output:\n" + "\n".join(self.lines))
                chunk = os.read(fd, 65536)
                if not chunk:
                    pytest.fail(f"exited ({self.proc.poll()}) first; output:\n" + "\n".join(self.lines))
                self._buffer += chunk
                *complete, self._buffer = self._buffer.split(b"\n")
                # Keep every line of the chunk (a later wait may need the ones after
                # the match), then answer with the first match.
                start = len(self.lines)
                self.lines.extend(raw.decode(errors="replace") for raw in complete)
                for line in self.lines[start:]:
                    if predicate(line):
                        return line

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _now() -> float:
    import time

    return time.monotonic()


def _status(path: Path) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = json.loads(path.read_text())["nodes"]
    return nodes


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
            pids |= {node["pid"] for node in _status(status_file) if node["pid"]}
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
    port = _free_port()
    status_file = tmp_path / "status.json"
    args = ["cluster", "start", "--nodes", "2", "--app", APP, "--port", str(port)]
    launcher = spawn([*args, "--status-file", str(status_file), "--restart"], secret=None)
    launcher.wait_line(_is_up)

    nodes = _status(status_file)
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
    assert all(_alive(pid) for pid in pids)
    # The secret was generated for this cluster and never put on a command line.
    for pid in pids:
        assert b"SECRET" not in Path(f"/proc/{pid}/cmdline").read_bytes().upper()

    os.kill(pids[1], signal.SIGKILL)
    ready = launcher.wait_line(
        lambda line: "alight-node-ready name=node1@127.0.0.1" in line and str(pids[1]) not in line
    )
    new_pid = int(ready.split("pid=")[1].split()[0])
    assert new_pid != pids[1]
    launcher.wait_line(lambda line: "node1@127.0.0.1" in line and "│ up" in line and str(new_pid) in line)
    restarted = _status(status_file)[1]
    assert (restarted["name"], restarted["pid"], restarted["state"]) == ("node1@127.0.0.1", new_pid, "up")
    assert _status(status_file)[0]["pid"] == pids[0]
    assert _get(port) == (200, b"ok")

    launcher.proc.send_signal(signal.SIGTERM)
    assert launcher.proc.wait(timeout=WAIT) == 0
    launcher.wait_line(lambda line: line == "cluster stopped")
    assert not _alive(pids[0])
    assert not _alive(new_pid)
    assert {node["state"] for node in _status(status_file)} == {"stopped"}


def test_port_per_node_gives_node_i_port_p_plus_i(spawn: Callable[..., Child], tmp_path: Path) -> None:
    port = _free_port(consecutive=2)
    status_file = tmp_path / "status.json"
    args = ["cluster", "start", "--nodes", "2", "--app", APP, "--port", str(port), "--port-per-node"]
    launcher = spawn([*args, "--status-file", str(status_file)])
    launcher.wait_line(_is_up)
    nodes = _status(status_file)
    assert [node["http_port"] for node in nodes] == [port, port + 1]
    assert _get(port) == (200, b"ok")
    assert _get(port + 1) == (200, b"ok")
    launcher.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert launcher.proc.wait(timeout=WAIT) == 0
    assert not any(_alive(node["pid"]) for node in nodes)


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
