"""``alight demo``, run as a user runs it: the console script starts a 3-node cluster on
a free port, and headless Chromium (tests/js/chat.js, playwright-core) drives the chat
page through its UI: two browser contexts chat and see each other's presence, one
crashes its channel, the other its socket, and one kills the node it is connected to;
the pages recover and the launcher restarts the node.

The launcher runs in a session of its own; teardown SIGKILLs its group and every node
pid the status file ever listed, so nothing is left behind. The screenshot of alice's
page goes to a temporary file, or to ``$ALIGHT_DEMO_SCREENSHOT`` (``docs/demo.png`` is
made this way).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit import UNIT
from testkit.launcher import Child, alive, free_ports, read_status
from testkit.processes import run_node
from testkit.readme import readme_block

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

CHROMIUM = Path("/usr/bin/chromium")
NODES = ["node0@127.0.0.1", "node1@127.0.0.1", "node2@127.0.0.1"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Demo:
    """A running ``alight demo``: its launcher, port and status file."""

    def __init__(self, launcher: Child, port: int, status_file: Path) -> None:
        self.launcher = launcher
        self.port = port
        self.status_file = status_file
        self.pids_seen: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def nodes(self) -> list[dict[str, Any]]:
        nodes = read_status(self.status_file)
        self.pids_seen |= {node["pid"] for node in nodes if node["pid"]}
        return nodes


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    if not CHROMIUM.exists():
        if os.environ.get("ALIGHT_REQUIRE_BROWSER"):
            pytest.fail(f"ALIGHT_REQUIRE_BROWSER is set but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; ./dev test does it)")
    port = free_ports()
    status_file = tmp_path / "status.json"
    # Node output to files: nobody reads the launcher's pipe while Chromium runs, and a
    # full pipe would block the launcher.
    args = ["demo", "--port", str(port), "--status-file", str(status_file), "--log-dir", str(tmp_path / "logs")]
    running = Demo(Child(args, secret=None), port, status_file)
    try:
        yield running
    finally:
        with contextlib.suppress(OSError, ValueError, KeyError):
            running.nodes()
        running.launcher.kill()
        for pid in running.pids_seen:  # every node is the leader of its own group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _wait_up(demo: Demo) -> None:
    demo.launcher.wait_line(lambda line: "chat demo up: open" in line)


def test_demo_serves_the_page_on_a_three_node_cluster(demo: Demo) -> None:
    _wait_up(demo)
    line = demo.launcher.wait_line(lambda line: "chat demo up: open" in line)
    assert f"http://127.0.0.1:{demo.port}" in line
    nodes = demo.nodes()
    assert [node["name"] for node in nodes] == NODES
    assert {node["state"] for node in nodes} == {"up"}
    assert {node["http_port"] for node in nodes} == {demo.port}
    for node in nodes:  # a secret was made for this run and never put on a command line
        assert b"SECRET" not in Path(f"/proc/{node['pid']}/cmdline").read_bytes().upper()
        assert b"ALIGHT_CLUSTER_SECRET=" in Path(f"/proc/{node['pid']}/environ").read_bytes()
    with urllib.request.urlopen(demo.url, timeout=5 * UNIT) as response:
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        page = response.read()
    assert b'<script src="/alight.js"></script>' in page
    with urllib.request.urlopen(demo.url + "alight.js", timeout=5 * UNIT) as response:
        assert b"root.alight = factory(root)" in response.read()  # the script build defines the global
    with urllib.request.urlopen(demo.url + "metrics", timeout=5 * UNIT) as response:
        metrics = response.read().decode()
    assert "alight_processes{" in metrics
    assert "alight_cluster_nodes_up{" in metrics
    demo.launcher.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert demo.launcher.proc.wait(timeout=15 * UNIT) == 0
    assert not any(alive(node["pid"]) for node in nodes)


HISTORY = "alight.root/(chat, chat)/history"
"""The tree path of a node's chat history server, as the dashboard names it."""


@pytest.mark.timeout(90 * UNIT)
def test_the_dashboard_of_the_demo_shows_the_cluster_and_a_killed_process_comes_back(demo: Demo) -> None:
    _wait_up(demo)
    run = run_node("dashboard.js", demo.url + "dashboard", str(CHROMIUM), "--kill", HISTORY, timeout=60 * UNIT)
    assert run.returncode == 0, run.transcript()
    page = run["page"]
    assert page["snapshot_node"] in NODES
    assert sorted(node["name"] for node in page["nodes"]) == NODES
    assert {node["state"] for node in page["nodes"]} == {"up"}
    assert HISTORY in {row["path"] for row in page["tree"]}
    killed = run["killed"]
    assert killed["after"] != killed["before"]
    assert killed["note"].startswith("restarted by its supervisor")
    assert run["console"]["errors"] == []


@pytest.fixture
def screenshot(tmp_path: Path) -> Path:
    chosen = os.environ.get("ALIGHT_DEMO_SCREENSHOT")
    return Path(chosen).resolve() if chosen else tmp_path / "demo.png"


@pytest.mark.timeout(200 * UNIT)  # the browser script's own bound is 170 units
def test_two_browsers_chat_crash_and_recover_on_the_cluster(demo: Demo, screenshot: Path, tmp_path: Path) -> None:
    _wait_up(demo)
    before = {node["name"]: node["pid"] for node in demo.nodes()}
    console_block = tmp_path / "console.js"
    console_block.write_text(readme_block('room.join().receive("ok", reply').text)
    run = run_node("chat.js", demo.url, str(screenshot), str(console_block), str(CHROMIUM), timeout=170 * UNIT)
    assert run.returncode == 0, run.transcript()
    check = run.__getitem__  # an observation, or a failure with the whole transcript

    presence = check("presence")
    for page in ("alice", "bob"):
        seen = presence[page]
        assert seen["presence"] == [{"name": "alice", "devices": 1}, {"name": "bob", "devices": 1}]
        assert seen["status"] == "connected"
        assert seen["node"] in NODES
        assert seen["status_text"] == f"connected to {seen['node']}"
        assert seen["console_ok"] is True

    devices = check("devices")
    assert {"name": "alice", "devices": 2} in devices["two"]
    assert {"name": "alice", "devices": 1} in devices["one"]

    chat = check("chat")
    for page in ("alice", "bob"):
        bodies = [(m["name"], m["body"]) for m in chat[page]]
        assert bodies == [("alice", "hi bob"), ("bob", "hello alice")]
        assert all(" · via node" in m["meta"] for m in chat[page])

    crash_channel = check("crash_channel")["log"]
    crashed = _index(crash_channel, "room:lobby: channel crashed on node")
    assert _index(crash_channel, "rejoined room:lobby on ") > crashed

    crash_socket = check("crash_socket")["log"]
    closed = _index(crash_socket, "connection closed (code 1011)")
    assert _index(crash_socket, "socket reconnected after ") > closed
    assert _index(crash_socket, "rejoined room:lobby on ") > closed

    rooms = check("rooms")
    assert rooms["tabs"] == ["room:lobby", "room:random"]  # the refused room left no tab
    refused = rooms["log"][_index(rooms["log"], "join room:no spaces! refused: ")]
    assert "room names are 1-32 lowercase letters, digits" in refused

    kill = check("kill_node")
    assert kill["killed"] in NODES
    assert kill["node_after"] in NODES
    assert kill["status_after"] == f"connected to {kill['node_after']}"
    alice_log = kill["alice_log"]
    dropped = _index(alice_log, "connection closed (code ")
    assert _index(alice_log, f"{kill['killed']} is about to be SIGKILLed") < dropped
    assert _index(alice_log, "rejoined room:lobby on ") > dropped
    alice_now = [meta for meta in kill["bob_metas"] if meta["name"] == "alice"]
    assert alice_now
    assert not {meta["ref"] for meta in alice_now} & set(kill["old_refs"])
    assert _index(kill["bob_log"], "room:lobby: alice killed ") >= 0

    assert check("screenshot")["path"] == str(screenshot)
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    logged = check("console")["logged"]  # the README block's own console.log
    assert logged.startswith("joined on ")
    assert logged.removeprefix("joined on ") in NODES
    pages = check("pages")
    assert pages["page_errors"] == []
    assert pages["console_api"] == [True, True]

    # The launcher restarted the killed node: a new OS process under the same name,
    # shown in its node table.
    killed, old_pid = kill["killed"], str(before[kill["killed"]])
    down = _row(demo.launcher.wait_line(lambda line: _cells(line, 0, -1) == (killed, "down")))
    assert down[1] == old_pid
    up = _row(demo.launcher.wait_line(lambda line: _cells(line, 0, -1) == (killed, "up") and old_pid not in _row(line)))
    assert up[1].isdigit()
    assert not alive(int(old_pid))
    assert demo.nodes()[NODES.index(killed)]["pid"] == int(up[1])

    # The README's metrics block, against this demo: each run reaches one of the three
    # nodes (a shared port), and the restarted one has counted no join yet.
    curl = readme_block("/metrics | grep").text.replace("127.0.0.1:4000", f"127.0.0.1:{demo.port}")
    outputs = [subprocess.run(["sh", "-c", curl], capture_output=True, text=True, timeout=10 * UNIT) for _ in range(12)]
    samples = [
        line for out in outputs for line in out.stdout.splitlines() if line.startswith("alight_channel_joins_total{")
    ]
    assert samples, [out.stdout for out in outputs]
    assert all('node="node' in line for line in samples)

    demo.launcher.proc.send_signal(signal.SIGTERM)
    assert demo.launcher.proc.wait(timeout=15 * UNIT) == 0
    assert not any(alive(pid) for pid in demo.pids_seen)


def _row(line: str) -> list[str]:
    """The cells of a row of the launcher's node table (name, pid, port, address, state)."""
    return [cell.strip() for cell in line.split("│")[1:-1]]


def _cells(line: str, *indexes: int) -> tuple[str, ...] | None:
    """Those cells of a node-table row, or None for any other line."""
    row = _row(line)
    return tuple(row[i] for i in indexes) if len(row) == 5 else None


def _index(lines: list[str], prefix: str) -> int:
    """The index of the last line starting with ``prefix`` (-1 if none)."""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith(prefix):
            return index
    return -1


def test_the_demo_starts_in_a_few_lines_and_says_what_goes_wrong(tmp_path: Path) -> None:
    """Without --verbose or --log-dir: a line per node as it comes up, the banner, the
    table; the nodes' INFO lines stay out, their warnings and the launcher's do not."""
    port = free_ports()
    launcher = Child(["demo", "--port", str(port), "--status-file", str(tmp_path / "s.json")], secret=None)
    try:
        launcher.wait_line(lambda line: "chat demo up: open" in line)
        launcher.wait_line(lambda line: _cells(line, 0, -1) == ("node2@127.0.0.1", "up"))
        first = launcher.lines[:3]
        progress = [re.fullmatch(r"  (node\d@127\.0\.0\.1) up in \d+\.\d s \(pid \d+\)", line) for line in first]
        assert [match[1] if match else line for match, line in zip(progress, first, strict=True)] == NODES
        assert launcher.lines[3].startswith("chat demo up: open http://127.0.0.1:")
        assert not [line for line in launcher.lines if line.startswith("[node") or "alight-node-ready" in line]
        # A node killed: the launcher's warning, and the table's down and up.
        victim = read_status(tmp_path / "s.json")[1]["pid"]
        os.kill(victim, signal.SIGKILL)
        warning = launcher.wait_line(lambda line: "exited with status" in line)
        assert f"WARNING alight.launcher: node node1@127.0.0.1 (pid {victim}) exited with status -9" in warning
        launcher.wait_line(lambda line: _cells(line, 0, -1) == ("node1@127.0.0.1", "up") and str(victim) not in line)
        assert not [line for line in launcher.lines if " INFO " in line]
    finally:
        launcher.kill()
    verbose = Child(["demo", "--port", str(free_ports()), "--nodes", "1", "--verbose"], secret=None)
    try:
        verbose.wait_line(lambda line: "chat demo up: open" in line)
        assert any(line.startswith("[node0@127.0.0.1] ") and " INFO " in line for line in verbose.lines)
    finally:
        verbose.kill()
