"""What ``alight run`` and ``alight node`` say when they cannot start: one line with the fix,
and an exit status that means something (2: a usage error; 3: something the node needs is
taken or missing), never a crash report and a traceback."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from testkit import UNIT
from testkit.processes import REPO, free_port

pytestmark = pytest.mark.slow  # OS processes

APP = "alight.examples.reference:app"


def _alight(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alight.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30 * UNIT,
        env=env,
    )


def _one_line_error(run: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in run.stderr, run.stderr
    assert "crash" not in run.stderr.lower(), run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, run.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["run", APP], ["node", "--app", APP, "--name", "n"]])
def test_a_port_in_use_is_one_line_and_exit_3(command: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"ALIGHT_CLUSTER_SECRET": "0123456789abcdef0123456789abcdef", "PATH": "/usr/bin:/bin"}
        run = _alight(*command, "--port", str(port), env=env)
    assert run.returncode == 3, (run.returncode, run.stderr)
    line = _one_line_error(run)
    assert f"127.0.0.1:{port}" in line
    assert "in use" in line
    assert "--port" in line


def test_a_port_out_of_range_is_a_usage_error() -> None:
    run = _alight("run", APP, "--port", "70000")
    assert run.returncode == 2
    assert "70000 is not in the range 0<=x<=65535" in run.stderr


def test_an_address_no_interface_has_is_named() -> None:
    run = _alight("run", APP, "--host", "192.0.2.1", "--port", str(free_port()))  # TEST-NET-1
    assert run.returncode == 3, run.stderr
    assert "no interface has the address 192.0.2.1" in _one_line_error(run)


def test_log_level_and_json_lines(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "alight.cli", "run", APP, "--port", str(port), "--log-format", "json"],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _lines_when(log, lambda text: "listening on" in text)
        joined = _alight("client", f"ws://127.0.0.1:{port}/socket", "room:logged", "--linger", "0.1")
        assert joined.returncode == 0, joined.stderr
        lines = _lines_when(log, lambda text: "JOINED room:logged" in text)
    finally:
        server.terminate()
        server.wait(timeout=30 * UNIT)
    messages = [json.loads(line)["message"] for line in lines]
    assert messages[0] == f"listening on http://127.0.0.1:{port}"
    assert json.loads(lines[0])["level"] == "info"
    # Phoenix's lines, with durations: CONNECTED TO UserSocket in 31µs, JOINED room:lobby in 292µs.
    connected = r"CONNECTED TO UserSocket in [\d.]+(µs|ms) \(websocket, vsn 2\.0\.0\)"
    assert any(re.fullmatch(connected, m) for m in messages), messages
    assert any(re.fullmatch(r"JOINED room:logged in [\d.]+(µs|ms)", m) for m in messages), messages
    # ALIGHT_LOG_LEVEL=warning: serving (its /health answers), and nothing said at info.
    port = free_port()
    quiet_log = tmp_path / "quiet.log"
    with quiet_log.open("wb") as out:
        quiet = subprocess.Popen(
            [sys.executable, "-m", "alight.cli", "run", APP, "--port", str(port)],
            cwd=REPO,
            env={**os.environ, "ALIGHT_LOG_LEVEL": "warning"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(port)
    finally:
        quiet.terminate()
        quiet.wait(timeout=30 * UNIT)
    assert "listening on" not in quiet_log.read_text()


def _wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 15 * UNIT
    while time.monotonic() < deadline:  # bounded
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=UNIT)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
        finally:
            conn.close()
    raise AssertionError(f"nothing healthy on {port}")


def _lines_when(path: Path, ready: Any) -> list[str]:
    deadline = time.monotonic() + 15 * UNIT
    while time.monotonic() < deadline:  # bounded
        text = path.read_text(errors="replace")
        if ready(text):
            return [line for line in text.splitlines() if line.startswith("{")]
        time.sleep(0.05)
    raise AssertionError(path.read_text(errors="replace")[-2000:])


def test_a_node_without_a_usable_secret_says_so_once_and_exits_3() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ALIGHT_CLUSTER_SECRET"}
    missing = _alight("node", "--app", APP, "--name", "n", "--port", "0", env=env)
    assert missing.returncode == 3
    line = _one_line_error(missing)
    assert "set ALIGHT_CLUSTER_SECRET to the same secret on every node (at least 16 random bytes" in line
    assert line.count("ALIGHT_CLUSTER_SECRET") == 1  # said once
    short = _alight("node", "--app", APP, "--name", "n", "--port", "0", env={**env, "ALIGHT_CLUSTER_SECRET": "short"})
    assert short.returncode == 3
    assert "is 5 bytes; at least 16 are required" in _one_line_error(short)


def test_every_option_comes_from_the_environment_too() -> None:
    run = _alight("run", APP, env={**os.environ, "ALIGHT_RUN_PORT": "70001"})
    assert run.returncode == 2
    assert "70001 is not in the range" in run.stderr  # ALIGHT_RUN_PORT was read as --port
